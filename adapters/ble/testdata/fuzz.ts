/** Test helper: a seeded pseudo-random generator (mulberry32), so fuzz runs repeat exactly. */
export { mulberry32 as prng } from "../../../src/rng.ts";

/** Random bytes of a length in [0, maxLength]. */
export function randomBytes(random: () => number, maxLength: number): Uint8Array {
  const out = new Uint8Array(Math.floor(random() * (maxLength + 1)));
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(random() * 256);
  return out;
}

/** Parses a hex string ("0512FC…") into bytes. */
export function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));
}

/** How many random inputs each fuzz test feeds its decoder. */
export const FUZZ_RUNS = 10_000;
