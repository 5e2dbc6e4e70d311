/**
 * The HTTP layer both local web servers use, the gateway's page (`src/http/`) and the fleet
 * console's (`src/fleet/`): security headers, JSON and asset responses, the session cookie,
 * bearer/cookie access with session generations, same-origin checks, a small router, listening,
 * and a socket-free {@linkcode request} for tests.
 */
export {
  type Authorization,
  PageAccess,
  type PageAccessOptions,
  sameOrigin,
  type ServeInfo,
} from "./auth.ts";
export { cookieValue, sessionCookie } from "./cookie.ts";
export {
  asset,
  BASE_HEADERS,
  CSS,
  empty,
  HTML,
  JAVASCRIPT,
  json,
  MAX_JSON_BODY,
  methodNotAllowed,
  PAGE_HEADERS,
  readJson,
  readText,
  RequestError,
} from "./response.ts";
export { type RouteContext, type RouteHandler, Router } from "./router.ts";
export {
  formatAddress,
  type Handler,
  listen,
  type Listener,
  type ListenOptions,
  parseListen,
  request,
  type TlsPem,
  warnClearText,
} from "./serve.ts";
export {
  generateToken,
  type GenerationStore,
  MemoryToken,
  secretEquals,
  SESSION_MAX_AGE_SECONDS,
  SessionSigner,
  type TokenCheck,
} from "./session.ts";
