/** Inputs that exhaust memory or the stack of a naive parser, shared by unit and process tests. */

/** "Billion laughs" YAML: level i lists level i-1 nine times (9^levels strings when expanded). */
export function laughs(levels = 9): string {
  const lines = ['x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i <= levels; i++) {
    lines.push(`x${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(", ")}]`);
  }
  return lines.join("\n") + "\n";
}

/** A JSON list nested `depth` deep: `[[[…]]]`. */
export function deepJsonList(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

/** A JSON object with `n` numeric fields. */
export function wideJsonObject(n: number): string {
  const parts = new Array<string>(n);
  for (let i = 0; i < n; i++) parts[i] = `"f${i}":${i}`;
  return `{${parts.join(",")}}`;
}

/** A CSV of `rows` lines `ts,value`, about 14 bytes each. */
export function longCsv(rows: number): string {
  const parts = new Array<string>(rows);
  for (let i = 0; i < rows; i++) parts[i] = `${1700000000 + i},${i % 1000}.5`;
  return parts.join("\n");
}
