/**
 * Keeps secrets off every output surface (health, status, metrics, logs, command replies, pages).
 * Three layers, because one is never enough: values under keys named like secrets are replaced,
 * URL credentials and secret-looking query parameters are masked in any text, and the literal
 * values of the secrets this process knows (from its config and token file) are replaced wherever
 * they turn up, e.g. inside a library's error message.
 */

/** Shown in place of a secret. */
export const REDACTED = "[redacted]";

// Compared with the key lowercased and without - and _: `X-Api-Key`, `private_key`, `password`.
const SECRET_KEY_RE =
  /(?:password|passwd|passphrase|secret|token|tokens|privatekey|apikey|accesskey|authorization|credential|credentials|cookie)$/;

/** True when a key of that name holds a secret (`password`, `token`, `privateKey`, `X-Api-Key`…). */
export function isSecretKey(name: string): boolean {
  return SECRET_KEY_RE.test(name.toLowerCase().replace(/[-_]/g, ""));
}

/** Secrets shorter than this are not searched for in text (they would mask ordinary words). */
const MIN_KNOWN_SECRET = 6;
const known = new Set<string>();

/**
 * Remembers a secret value: from now on {@linkcode redactText} replaces it wherever it appears.
 * Values shorter than 6 characters are ignored.
 */
export function rememberSecret(value: string): void {
  if (value.length >= MIN_KNOWN_SECRET) known.add(value);
}

/**
 * Remembers every secret in a config: values under secret-named keys (see
 * {@linkcode isSecretKey}), and passwords written into URLs.
 */
export function rememberSecretsIn(value: unknown, depth = 0): void {
  if (depth > 32 || value === null || typeof value !== "object") return;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (isSecretKey(k)) rememberScalars(v, depth + 1);
    else if (typeof v === "string") rememberUrlPassword(v);
    else rememberSecretsIn(v, depth + 1);
  }
}

/**
 * The value of a secret-named key: a scalar, or a list of them, is a secret. Objects (such as the
 * `tokens:` entries of the http adapter, with their `name` and `devices`) are searched for their
 * own secret keys, so labels and device ids are not taken for secrets.
 */
function rememberScalars(v: unknown, depth: number): void {
  if (depth > 32) return;
  if (typeof v === "string") rememberSecret(v);
  else if (typeof v === "number") rememberSecret(String(v));
  else if (Array.isArray(v)) { for (const x of v) rememberScalars(x, depth + 1); }
  else rememberSecretsIn(v, depth + 1);
}

function rememberUrlPassword(text: string): void {
  for (const m of text.matchAll(URL_USERINFO_RE)) {
    const info = m[2];
    const i = info.indexOf(":");
    const secret = i < 0 ? info : info.slice(i + 1);
    rememberSecret(secret);
    try {
      rememberSecret(decodeURIComponent(secret));
    } catch { /* not percent-encoded */ }
  }
}

// scheme://userinfo@ — userinfo ends at the first @ before any / ? # or space.
const URL_USERINFO_RE = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s\/?#@"'<>]+)@/gi;
const QUERY_PARAM_RE = /([?&])([^=&\s#"'<>]+)=([^&\s#"'<>]*)/g;
const AUTH_SCHEME_RE = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+\/=-]{6,}/gi;
const ASSIGNMENT_RE =
  /\b(password|passwd|passphrase|secret|token|api[_-]?key)(["']?\s*[:=]\s*["']?)(?!\[redacted\]|\$\{)([^\s"',;&}]+)/gi;

/**
 * Masks secrets in free text: URL credentials (`mqtts://user:[redacted]@host`, a userinfo without
 * a password is dropped whole), values of secret-named query parameters, `Bearer …`,
 * `password=…`, and every secret remembered with {@linkcode rememberSecret}.
 */
export function redactText(text: string): string {
  if (text.length === 0) return text;
  let out = text;
  if (out.includes("://")) {
    out = out.replace(URL_USERINFO_RE, (_m, scheme: string, info: string) => {
      const i = info.indexOf(":");
      return i < 0 ? `${scheme}${REDACTED}@` : `${scheme}${info.slice(0, i)}:${REDACTED}@`;
    });
  }
  if (out.includes("=")) {
    out = out.replace(
      QUERY_PARAM_RE,
      (m, sep: string, name: string, value: string) =>
        value && isSecretKey(safeDecode(name)) ? `${sep}${name}=${REDACTED}` : m,
    );
  }
  out = out.replace(ASSIGNMENT_RE, (_m, k: string, eq: string) => `${k}${eq}${REDACTED}`);
  out = out.replace(AUTH_SCHEME_RE, (_m, scheme: string) => `${scheme} ${REDACTED}`);
  for (const secret of known) {
    if (out.includes(secret)) out = out.replaceAll(secret, REDACTED);
  }
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** A URL for display: credentials and secret query parameters masked (see {@linkcode redactText}). */
export function redactUrl(url: string): string {
  return redactText(url);
}

/**
 * A deep copy of `value` fit to show: every scalar under a secret-named key is replaced by
 * {@linkcode REDACTED}, every other string goes through {@linkcode redactText}. Top-level keys
 * listed in `skip` are copied as they are, for bulk data that holds no secrets.
 */
export function redactValue<T>(value: T, opts: { skip?: readonly string[] } = {}): T {
  return redactInner(value, false, 0, opts.skip ?? []) as T;
}

function redactInner(v: unknown, secret: boolean, depth: number, skip: readonly string[]): unknown {
  if (typeof v === "string") return secret && v !== "" ? REDACTED : redactText(v);
  if (typeof v === "number" || typeof v === "bigint") return secret ? REDACTED : v;
  if (v === null || typeof v !== "object") return v;
  if (depth > 32) return REDACTED;
  if (v instanceof Error) return redactText(v.message);
  if (Array.isArray(v)) return v.map((x) => redactInner(x, secret, depth + 1, skip));
  if (Object.getPrototypeOf(v) !== Object.prototype && Object.getPrototypeOf(v) !== null) {
    return v;
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    out[k] = depth === 0 && skip.includes(k)
      ? x
      : redactInner(x, secret || isSecretKey(k), depth + 1, skip);
  }
  return out;
}

/**
 * Masks inline secrets in config YAML text: the value of every secret-named key that is not a
 * `${ENV}` / `${file:…}` reference (references name where a secret lives, not the secret), and
 * URL credentials. A redacted file does not validate until the secrets are put back.
 */
export function redactConfigText(yaml: string): string {
  // Inside a block scalar (`privateKey: |`) of a secret key: lines indented deeper than this.
  let blockIndent = -1;
  return yaml.split("\n").map((line) => {
    const indent = line.length - line.trimStart().length;
    if (blockIndent >= 0) {
      if (line.trim() === "" || indent > blockIndent) {
        return line.trim() === "" ? line : `${line.slice(0, indent)}# ${REDACTED}`;
      }
      blockIndent = -1;
    }
    const m = /^(\s*(?:-\s+)?["']?([A-Za-z0-9_-]+)["']?\s*:\s+)(\S.*?)(\s+#.*)?$/.exec(line);
    let out = line;
    if (m && isSecretKey(m[2]) && isInline(m[3]) && !/^[{\[]/.test(m[3])) {
      if (/^[|>]/.test(m[3])) blockIndent = m[1].length - m[1].trimStart().length;
      out = `${m[1]}"${REDACTED}"${m[4] ?? ""}`;
    }
    // Flow mappings: `{ token: abc, devices: [x] }`.
    out = out.replace(
      /([{,]\s*["']?([A-Za-z0-9_-]+)["']?\s*:\s*)("[^"]*"|'[^']*'|[^,{}\[\]\s][^,{}\[\]]*?)(\s*[,}])/g,
      (all, head: string, key: string, value: string, tail: string) =>
        isSecretKey(key) && isInline(value) ? `${head}"${REDACTED}"${tail}` : all,
    );
    return redactText(out);
  }).join("\n");
}

/** A literal value, not a `${…}` reference to where the secret lives. */
function isInline(value: string): boolean {
  return !/^["']?\$\{[^}]*\}["']?$/.test(value.trim()) && value.trim() !== `"${REDACTED}"`;
}
