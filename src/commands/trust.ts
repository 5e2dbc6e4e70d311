/**
 * What a remote `config-set` may not change: the trust anchors that only the local config file
 * sets. Compared on the raw YAML trees (before `${…}` references are resolved), so a reference
 * smuggled into any value is seen as such.
 */
import { parseDocument } from "yaml";
import { checkShape, MAX_CONFIG_BYTES } from "../config/load.ts";
import { canonicalJson } from "../update/mod.ts";

/** Keys of `update:` a remote config-set may change; every other one is a trust anchor. */
const UPDATE_TUNABLES = new Set([
  "checkInterval",
  "maxArtifactBytes",
  "healthDeadline",
  "maxAttempts",
]);

const REF_RE = /\$\{[^}]*\}/g;

/** One change a remote config-set is refused for. */
export interface ProtectedChange {
  /** Key path, e.g. `update.channel`, `adapters[name=probe]`, `gateway.site`. */
  path: string;
  why: string;
}

/**
 * The YAML as plain data, `${…}` left as written; undefined when it does not parse or is beyond
 * the config loader's size and shape limits (that validation then refuses it without parsing it).
 */
function rawTree(text: string): Record<string, unknown> | undefined {
  if (text.length > MAX_CONFIG_BYTES || checkShape(text)) return undefined;
  const doc = parseDocument(text);
  if (doc.errors.length) return undefined;
  let v: unknown;
  try {
    v = doc.toJS({ maxAliasCount: 1000 });
  } catch {
    return undefined;
  }
  return v && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : {};
}

function same(a: unknown, b: unknown): boolean {
  return canonicalJson(a ?? null) === canonicalJson(b ?? null);
}

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : {};
}

/** A list item's path segment: `[name=x]` for mappings with a name (reordering is no change). */
function segment(item: unknown, i: number): string {
  const name = obj(item).name;
  return typeof name === "string" || typeof name === "number" ? `[name=${name}]` : `[${i}]`;
}

/** Every `${…}` reference in string values (and keys), by the path where it appears. */
function references(v: unknown, path: string, out: Map<string, Set<string>>): void {
  const add = (p: string, text: string) => {
    for (const m of text.matchAll(REF_RE)) {
      let set = out.get(p);
      if (!set) out.set(p, set = new Set());
      set.add(m[0]);
    }
  };
  if (typeof v === "string") add(path, v);
  else if (Array.isArray(v)) v.forEach((item, i) => references(item, path + segment(item, i), out));
  else if (v && typeof v === "object") {
    for (const [k, val] of Object.entries(v)) {
      const p = path ? `${path}.${k}` : k;
      add(p, k);
      references(val, p, out);
    }
  }
}

/** Adapters of type exec (or whose type is a reference, which may resolve to exec), by path. */
function execAdapters(tree: Record<string, unknown>): Map<string, unknown> {
  const list = Array.isArray(tree.adapters) ? tree.adapters : [];
  const out = new Map<string, unknown>();
  list.forEach((a, i) => {
    const type = obj(a).type;
    if (type === "exec" || (typeof type === "string" && type.includes("${"))) {
      out.set(`adapters${segment(a, i)}`, a);
    }
  });
  return out;
}

/**
 * The trust anchors `after` changes compared with `before` (both config file texts): anything
 * in `commands`, the update channel and root of trust (every `update` key but the timing and size
 * tunables), any `exec` adapter added, changed or removed, and any `${…}` reference at a key path
 * where the same reference was not before. Empty when the change may be made remotely (or when
 * `after` is not YAML at all). Run it before validating `after`: validation resolves references.
 */
export function protectedChanges(before: string, after: string): ProtectedChange[] {
  const a = rawTree(before) ?? {};
  const b = rawTree(after);
  // Not YAML: the validation that follows refuses it (and reads no reference of it).
  if (!b) return [];
  const out: ProtectedChange[] = [];
  if (!same(a.commands ?? {}, b.commands ?? {})) {
    const ca = obj(a.commands);
    const cb = obj(b.commands);
    const keys = [...new Set([...Object.keys(ca), ...Object.keys(cb)])]
      .filter((k) => !same(ca[k], cb[k]));
    for (const k of keys.length ? keys : [""]) {
      out.push({
        path: k ? `commands.${k}` : "commands",
        why: "operator keys, signature settings and everything else under commands",
      });
    }
  }
  const hasA = a.update !== undefined && a.update !== null;
  const hasB = b.update !== undefined && b.update !== null;
  if (hasA !== hasB) {
    out.push({
      path: "update",
      why: "adding or removing self-update sets the release channel and root of trust",
    });
  } else if (hasA) {
    const ua = obj(a.update);
    const ub = obj(b.update);
    for (const k of new Set([...Object.keys(ua), ...Object.keys(ub)])) {
      if (UPDATE_TUNABLES.has(k) || same(ua[k], ub[k])) continue;
      out.push({
        path: `update.${k}`,
        why: k === "trustedKeys" || /root/i.test(k)
          ? "release keys are the root of trust"
          : k === "channel" || k === "channelName" || k === "allowInsecure"
          ? "the release channel decides what gets installed"
          : "only checkInterval, maxArtifactBytes, healthDeadline and maxAttempts of update may change remotely",
      });
    }
  }
  const execA = execAdapters(a);
  const execB = execAdapters(b);
  for (const [p, v] of execB) {
    if (!execA.has(p)) out.push({ path: p, why: "adding an exec adapter runs a program" });
    else if (!same(execA.get(p), v)) out.push({ path: p, why: "changing an exec adapter" });
  }
  for (const p of execA.keys()) {
    if (!execB.has(p)) out.push({ path: p, why: "removing an exec adapter" });
  }
  if (!same(obj(a.devices).exec, obj(b.devices).exec)) {
    out.push({ path: "devices.exec", why: "the device offer hook runs a program" });
  }
  const refsA = new Map<string, Set<string>>();
  const refsB = new Map<string, Set<string>>();
  references(a, "", refsA);
  references(b, "", refsB);
  for (const [p, refs] of refsB) {
    for (const r of refs) {
      if (!refsA.get(p)?.has(r)) {
        out.push({
          path: p,
          why: `the reference ${r} was not there before (it would read a file or variable)`,
        });
      }
    }
  }
  return out;
}
