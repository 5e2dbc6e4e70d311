/**
 * Responses of the two local web servers (the gateway page and the fleet page): the security
 * headers every answer carries, JSON bodies and errors, page assets, bounded request bodies.
 */

/** Headers on every response: nothing is cached, sniffed or sent on as a referrer. */
export const BASE_HEADERS: Readonly<Record<string, string>> = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** Headers on a page and its assets: no framing, scripts and styles from this origin only. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  ...BASE_HEADERS,
  "x-frame-options": "DENY",
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; " +
    "frame-ancestors 'none'",
};

/** Content types of the assets the pages are made of. */
export const HTML = "text/html; charset=utf-8";
/** The style sheet's content type. */
export const CSS = "text/css; charset=utf-8";
/** The page script's content type. */
export const JAVASCRIPT = "text/javascript; charset=utf-8";

/** A JSON response (one line, newline-terminated) with the base headers. */
export function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { ...BASE_HEADERS, "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** A page asset (markup, style, the embedded script) with the page headers. */
export function asset(body: string, type: string): Response {
  return new Response(body, { headers: { ...PAGE_HEADERS, "content-type": type } });
}

/** A body-less answer (204 unless told) with the base headers and `headers`. */
export function empty(status = 204, headers: Record<string, string> = {}): Response {
  return new Response(null, { status, headers: { ...BASE_HEADERS, ...headers } });
}

/** A 405 naming the method (and the path, when given) with the methods that are allowed. */
export function methodNotAllowed(method: string, allow?: string, path?: string): Response {
  return json(
    { error: `method ${method} not allowed${path === undefined ? "" : ` on ${path}`}` },
    405,
    allow === undefined ? {} : { allow },
  );
}

/** A request the server refuses, answered as `{"error": message}` with `status`. */
export class RequestError extends Error {
  override name = "RequestError";
  /** The HTTP status of the answer. */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * The body as text, refused with a 413 {@linkcode RequestError} when its declared length or
 * the text read is longer than `max`.
 */
export async function readText(req: Request, max: number): Promise<string> {
  const length = Number(req.headers.get("content-length") ?? "0");
  if (length > max) throw new RequestError(413, "request too large");
  const text = await req.text();
  if (text.length > max) throw new RequestError(413, "request too large");
  return text;
}

/** Largest JSON body {@linkcode readJson} reads unless told. */
export const MAX_JSON_BODY = 64 * 1024;

/** Reads a JSON object body of at most `max` bytes; throws {@linkcode RequestError} otherwise. */
export async function readJson(
  req: Request,
  max = MAX_JSON_BODY,
): Promise<Record<string, unknown>> {
  const text = await readText(req, max);
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
