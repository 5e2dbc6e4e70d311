/**
 * Generates the config reference from the same schema the gateway validates with: the part of
 * docs/configuration.md below {@linkcode MARKER}, and docs/adapters/<type>.md for every registered
 * adapter (its keys, with a link to the hand-written guide in adapters/<type>/README.md).
 *
 * `deno task docs` writes them; `config_docs_test.ts` fails when a file on disk is stale.
 */
import { gatewaySchema } from "../src/config/gateway.ts";
import { formatBytes, type JsonSchema } from "../src/config/schema.ts";
import type { AdapterRegistry } from "../src/adapter.ts";
import { adapters } from "../adapters/mod.ts";

/** Everything below this line of docs/configuration.md is generated. */
export const MARKER =
  "<!-- Generated from the schema by `deno task docs`: edit the schema's .describe() texts, not this part. -->";

const ENV_REF = "^\\$\\{[^}]+\\}$";
const DURATION = "^(\\d+(?:\\.\\d+)?)\\s*(ms|s|m|h|d)$";
const BYTES = "^(\\d+(?:\\.\\d+)?)\\s*(b|kb|kib|mb|mib|gb|gib)$";

interface Row {
  key: string;
  type: string;
  def: string;
  desc: string;
}

const props = (j: JsonSchema) => (j.properties ?? {}) as Record<string, JsonSchema>;
const options = (j: JsonSchema) => (j.anyOf ?? []) as JsonSchema[];
const isDuration = (j: JsonSchema) => options(j).some((o) => o.pattern === DURATION);
const isBytes = (j: JsonSchema) => options(j).some((o) => o.pattern === BYTES);

/** Tagged union variants (`allOf` of `if type = X then …`), by tag value. */
function variants(j: JsonSchema): [string, JsonSchema][] {
  return ((j.allOf ?? []) as JsonSchema[]).flatMap((c) => {
    const tag = (c.if as JsonSchema | undefined)?.properties as
      | Record<string, JsonSchema>
      | undefined;
    const value = tag && Object.values(tag)[0]?.const;
    return typeof value === "string" ? [[value, c.then as JsonSchema] as [string, JsonSchema]] : [];
  });
}

function formatMs(ms: number): string {
  for (
    const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const
  ) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function range(j: JsonSchema): string {
  const lo = j.minimum as number | undefined;
  const hi = j.maximum as number | undefined;
  if (lo !== undefined && hi !== undefined) return ` ${lo}–${hi}`;
  if (lo !== undefined) return ` ≥ ${lo}`;
  if (hi !== undefined) return ` ≤ ${hi}`;
  return "";
}

/** A short human name for a schema's type. */
export function typeName(j: JsonSchema): string {
  if (isDuration(j)) return "duration";
  if (isBytes(j)) return "size";
  if (Array.isArray(j.enum)) return j.enum.map((v) => `\`${String(v)}\``).join(", ");
  if (j.const !== undefined) return `\`${String(j.const)}\``;
  if (j.anyOf) {
    const names = options(j).filter((o) => o.pattern !== ENV_REF).map(typeName);
    return [...new Set(names)].join(" or ");
  }
  if (variants(j).length > 0) return "object, by `type`";
  switch (j.type) {
    case "integer":
    case "number":
      return `${j.type}${range(j)}`;
    case "array": {
      const items = j.items as JsonSchema | undefined;
      return items ? `list of ${typeName(items)}` : "list";
    }
    case "string":
      return "string";
    case "boolean":
      return "boolean";
    case "object":
      return "object";
    default:
      return "any";
  }
}

function defaultOf(j: JsonSchema): string {
  if (!("default" in j)) return "";
  const d = j.default;
  if (typeof d === "number" && isDuration(j)) return `\`${formatMs(d)}\``;
  if (typeof d === "number" && isBytes(j)) return `\`${formatBytes(d)}\``;
  if (d !== null && typeof d === "object") {
    return Array.isArray(d) && d.length === 0 ? "`[]`" : "";
  }
  return `\`${String(d)}\``;
}

const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ");

/**
 * The rows of every key under `j`, depth first. In one of several alternative shapes (`anyOf`),
 * a key required by that shape alone is not marked required.
 */
function rows(
  j: JsonSchema,
  prefix: string,
  out: Row[],
  seen = new Set<string>(),
  alternative = false,
): Row[] {
  const required = new Set((j.required ?? []) as string[]);
  for (const [key, child] of Object.entries(props(j))) {
    if (key === "type" && Object.keys(child).length === 0) continue;
    const path = prefix ? `${prefix}.${key}` : key;
    if (seen.has(path)) continue;
    seen.add(path);
    const desc = (child.description as string | undefined) ?? "";
    out.push({
      key: path,
      type: typeName(child),
      def: required.has(key) && !alternative ? "required" : defaultOf(child),
      desc,
    });
    nested(child, path, out, seen);
  }
  return out;
}

function nested(j: JsonSchema, path: string, out: Row[], seen: Set<string>): void {
  if (j.type === "object" && variants(j).length === 0) rows(j, path, out, seen);
  if (j.type === "array" && j.items) {
    const items = j.items as JsonSchema;
    if (items.type === "object" && variants(items).length === 0) {
      rows(items, `${path}[]`, out, seen);
    }
    alternatives(items, `${path}[]`, out, seen);
  }
  alternatives(j, path, out, seen);
}

function alternatives(j: JsonSchema, path: string, out: Row[], seen: Set<string>): void {
  const objects = options(j).filter((o) => o.type === "object");
  for (const o of objects) rows(o, path, out, seen, objects.length > 1);
}

function table(rs: Row[]): string {
  const lines = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"];
  for (const r of rs) {
    lines.push(`| \`${r.key}\` | ${cell(r.type)} | ${cell(r.def)} | ${cell(r.desc)} |`);
  }
  return lines.join("\n");
}

/** The generated part of docs/configuration.md (without the marker). */
export function configReference(registry: AdapterRegistry = adapters): string {
  const root = gatewaySchema(registry).toJsonSchema();
  const parts: string[] = [];
  for (const [key, child] of Object.entries(props(root))) {
    parts.push(`### \`${key}\``);
    const desc = child.description as string | undefined;
    const type = typeName(child);
    const def = defaultOf(child);
    if (desc || type !== "object") {
      parts.push(`${desc ? `${desc}. ` : ""}Type: ${type}${def ? `; default ${def}` : ""}.`);
    }
    if (key === "adapters") {
      parts.push(
        "Each entry has `type`, `name` and `enabled`, and the keys of its adapter:\n\n" +
          Object.keys(registry).map((t) => `- [\`${t}\`](adapters/${t}.md)`).join("\n"),
      );
      continue;
    }
    const vs = variants(child);
    if (vs.length > 0) {
      for (const [tag, v] of vs) {
        parts.push(`#### \`${key}\` with \`type: ${tag}\``);
        parts.push(table(rows(v, key, [])));
      }
      continue;
    }
    const rs: Row[] = [];
    nested(child, key, rs, new Set());
    if (rs.length > 0) parts.push(table(rs));
  }
  return parts.join("\n\n") + "\n";
}

/** docs/adapters/<type>.md: the adapter's keys, generated, and a link to its guide. */
export function adapterReference(type: string, registry: AdapterRegistry = adapters): string {
  const entry = variants(
    ((gatewaySchema(registry).toJsonSchema().properties as Record<string, JsonSchema>).adapters
      .items) as JsonSchema,
  ).find(([t]) => t === type)?.[1];
  if (!entry) throw new Error(`no adapter "${type}" in the registry`);
  return [
    `# \`${type}\` adapter: config keys`,
    `${MARKER}`,
    `The keys of an \`adapters:\` entry with \`type: ${type}\`. How the adapter works, what each ` +
    `key is for and a runnable example: [adapters/${type}/README.md](../../adapters/${type}/README.md).`,
    table(rows(entry, "", [])),
  ].join("\n\n") + "\n";
}

/** Every generated file, by path from the repository root, with its full expected text. */
export function generatedFiles(
  configMd: string,
  registry: AdapterRegistry = adapters,
): Map<string, string> {
  const at = configMd.indexOf(MARKER);
  if (at < 0) throw new Error(`docs/configuration.md lacks the line ${MARKER}`);
  const out = new Map<string, string>();
  out.set(
    "docs/configuration.md",
    `${configMd.slice(0, at)}${MARKER}\n\n${configReference(registry)}`,
  );
  for (const type of Object.keys(registry)) {
    out.set(`docs/adapters/${type}.md`, adapterReference(type, registry));
  }
  return out;
}

if (import.meta.main) {
  const root = new URL("../", import.meta.url);
  const current = await Deno.readTextFile(new URL("docs/configuration.md", root));
  await Deno.mkdir(new URL("docs/adapters/", root), { recursive: true });
  for (const [path, text] of generatedFiles(current)) {
    await Deno.writeTextFile(new URL(path, root), text);
    console.log(`wrote ${path}`);
  }
}
