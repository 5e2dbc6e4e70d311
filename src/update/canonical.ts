/**
 * Canonical JSON: object keys sorted, no whitespace, so the signed bytes of a manifest do not
 * depend on how it was pretty-printed or which tool reordered it.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new TypeError(`canonical JSON cannot hold the number ${value}`);
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  return `{${
    Object.keys(obj).filter((k) => obj[k] !== undefined).sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")
  }}`;
}
