/** The session cookie: read from a request, written for a response. */

/** The value of cookie `name` in the request, if any. */
export function cookieValue(req: Request, name: string): string | undefined {
  for (const part of (req.headers.get("cookie") ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/**
 * A `set-cookie` value for a session cookie: whole site, `HttpOnly`, `SameSite=Strict`, and
 * `Secure` when served over HTTPS. `maxAge` 0 clears it.
 */
export function sessionCookie(
  name: string,
  value: string,
  opts: { maxAge: number; secure: boolean },
): string {
  return `${name}=${value}; Path=/; Max-Age=${opts.maxAge}; HttpOnly; SameSite=Strict` +
    (opts.secure ? "; Secure" : "");
}
