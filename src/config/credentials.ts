import { redactUrl } from "../redact.ts";
import type { Ctx, Path } from "./schema.ts";

const USERINFO_RE = /^[a-z][a-z0-9+.-]*:\/\/[^\/?#\s]*@/i;

/** True for a key that holds a URL (`url`, `alarmUrl`, `channel`). */
function isUrlKey(key: string): boolean {
  return key === "url" || key === "channel" || /[a-z]Url$/.test(key);
}

interface ConfigView {
  uplink?: Record<string, unknown>;
  adapters: { config: unknown }[];
  update?: { channel: string };
}

function walk(
  value: unknown,
  path: Path,
  found: (path: Path, url: string) => void,
  depth = 0,
): void {
  if (depth > 16 || value === null || typeof value !== "object") return;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const at = [...path, Array.isArray(value) ? Number(k) : k];
    if (typeof v === "string" && isUrlKey(k) && USERINFO_RE.test(v)) found(at, v);
    else walk(v, at, found, depth + 1);
  }
}

/**
 * Refuses credentials written into URLs (`mqtts://user:pass@host`) in the uplink, the adapters
 * and the update channel: a URL is shown in logs, /status, metrics labels and replies, while the
 * `username` / `password` keys (with `${ENV}` or `${file:…}`) never are. Rule actions, which
 * have no such keys, may keep them; every output surface masks them.
 */
export function checkUrlCredentials(c: ConfigView, ctx: Ctx): void {
  const refuse = (why: string) => (path: Path, url: string) =>
    ctx.fail(path, `credentials in the URL are not allowed (got "${redactUrl(url)}"): ${why}`);
  const useKeys = "put them in username: and password:, best as ${ENV} or ${file:/path}";
  // The https uplink's own schema already refuses them, with its token/headers advice.
  if (c.uplink && c.uplink.type !== "https") walk(c.uplink, ["uplink"], refuse(useKeys));
  c.adapters.forEach((a, i) => walk(a.config, ["adapters", i], refuse(useKeys)));
  if (c.update && USERINFO_RE.test(c.update.channel)) {
    refuse("a release channel serves signed, public files; it needs no login")(
      ["update", "channel"],
      c.update.channel,
    );
  }
}
