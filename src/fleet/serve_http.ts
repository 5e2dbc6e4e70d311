/**
 * Response and request helpers of the fleet page server: security headers, JSON and asset
 * responses, the session cookie, bounded JSON bodies.
 */

/** Largest JSON body the API reads. */
const MAX_BODY = 64 * 1024;

/** Headers on every response. */
export const BASE_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** Headers on the page and its assets: no framing, scripts and styles from this origin only. */
export const PAGE_HEADERS = {
  ...BASE_HEADERS,
  "x-frame-options": "DENY",
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; " +
    "frame-ancestors 'none'",
};

/** A JSON response with the base headers. */
export function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { ...BASE_HEADERS, "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** A page asset with the page headers. */
export function asset(body: string, type: string): Response {
  return new Response(body, { headers: { ...PAGE_HEADERS, "content-type": type } });
}

/** The value of cookie `name` in the request, if any. */
export function cookieValue(req: Request, name: string): string | undefined {
  for (const part of (req.headers.get("cookie") ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** A request the API refuses, answered as `{"error": message}` with `status`. */
export class RequestError extends Error {
  override name = "RequestError";
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Reads a JSON object body of at most 64 KiB; throws {@linkcode RequestError} otherwise. */
export async function readJson(req: Request): Promise<Record<string, unknown>> {
  const length = Number(req.headers.get("content-length") ?? "0");
  if (length > MAX_BODY) throw new RequestError(413, "request too large");
  const text = await req.text();
  if (text.length > MAX_BODY) throw new RequestError(413, "request too large");
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new RequestError(400, "expected a JSON body");
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw new RequestError(400, "expected a JSON object");
  }
  return body as Record<string, unknown>;
}
