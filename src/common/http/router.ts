/**
 * A small router: handlers by method and path (an exact string, or a pattern whose groups become
 * the route's parameters). What happens when nothing matches (404, 405, a login wall) is the
 * server's own policy, so {@linkcode Router.route} answers undefined then.
 */
import type { ServeInfo } from "./auth.ts";

/** What a handler gets besides the request. */
export interface RouteContext {
  url: URL;
  info: ServeInfo;
  /** The pattern's capture groups, for a route given as a RegExp. */
  params: string[];
}

/** Answers one route. */
export type RouteHandler = (req: Request, ctx: RouteContext) => Response | Promise<Response>;

interface Route {
  methods: readonly string[];
  path: string | RegExp;
  handler: RouteHandler;
}

/** Routes by method and path; `GET` routes answer `HEAD` too (the server drops the body). */
export class Router {
  readonly #routes: Route[] = [];

  /** Adds a `GET` (and `HEAD`) route. */
  get(path: string | RegExp, handler: RouteHandler): this {
    this.#routes.push({ methods: ["GET", "HEAD"], path, handler });
    return this;
  }

  /** Adds a `POST` route. */
  post(path: string | RegExp, handler: RouteHandler): this {
    this.#routes.push({ methods: ["POST"], path, handler });
    return this;
  }

  /** The exact paths routed, in the order added, each once. */
  get paths(): string[] {
    const exact = this.#routes.map((r) => r.path).filter((p) => typeof p === "string");
    return [...new Set(exact)];
  }

  /** True when some route (of any method) has `path`. */
  has(path: string): boolean {
    return this.#routes.some((r) => this.#match(r, path) !== undefined);
  }

  #match(r: Route, path: string): string[] | undefined {
    if (typeof r.path === "string") return r.path === path ? [] : undefined;
    const m = r.path.exec(path);
    return m === null || m[0] !== path ? undefined : m.slice(1);
  }

  /** The answer of the route for the request's method and path, or undefined when none fits. */
  route(req: Request, info: ServeInfo, url = new URL(req.url)): Promise<Response> | undefined {
    for (const r of this.#routes) {
      if (!r.methods.includes(req.method)) continue;
      const params = this.#match(r, url.pathname);
      if (params !== undefined) return Promise.resolve(r.handler(req, { url, info, params }));
    }
    return undefined;
  }
}
