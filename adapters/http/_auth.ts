import { createHash, timingSafeEqual } from "node:crypto";

/** A configured token: who it is and which devices it may post for. */
export interface TokenEntry {
  name: string;
  /** Devices it may post for; undefined means any. */
  devices?: ReadonlySet<string>;
}

function digest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/**
 * The accepted bearer tokens. Lookups compare SHA-256 digests in constant time against every
 * token, so neither the match nor its position leaks through timing.
 */
export class TokenSet {
  readonly #entries: { hash: Uint8Array; entry: TokenEntry }[];

  /** Builds the set from the configured tokens. */
  constructor(tokens: readonly { token: string; name?: string; devices?: string[] }[]) {
    this.#entries = tokens.map((t, i) => ({
      hash: digest(t.token),
      entry: {
        name: t.name ?? `tokens[${i}]`,
        devices: t.devices && new Set(t.devices),
      },
    }));
  }

  /** Finds the token of an `Authorization: Bearer <token>` header; undefined when none matches. */
  find(header: string | null): TokenEntry | undefined {
    const m = header === null ? null : /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
    const presented = digest(m ? m[1] : "");
    let found: TokenEntry | undefined;
    for (const e of this.#entries) {
      if (timingSafeEqual(e.hash, presented) && m) found = e.entry;
    }
    return found;
  }
}
