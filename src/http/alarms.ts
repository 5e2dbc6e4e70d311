/**
 * The gateway page's alarm API: `GET /api/alarms` (active alarms and history) and
 * `POST /api/alarms/acknowledge` / `POST /api/alarms/clear` with `{"key": "rule[instance]"}`.
 * The server checks the token or session first; here every POST must also come from the page's
 * own origin with a JSON body (a cross-site form can send neither), and is logged with who asked.
 */
import { json, readJson, RequestError, type Router, sameOrigin } from "../common/http/mod.ts";
import { AlarmNotFoundError, type AlarmsView } from "../edge/mod.ts";
import type { Gateway } from "../gateway.ts";
import type { Logger } from "../log.ts";

/** Largest alarm request body (a key is at most a rule name and an instance). */
const MAX_BODY = 4096;

/** What `GET /api/alarms` answers. */
export interface AlarmsResponse extends AlarmsView {
  /** The gateway has `rules:`; without, there are never alarms. */
  configured: boolean;
  now: number;
}

/** Adds the alarm routes to `router` (which the server puts behind the token). */
export function alarmRoutes(router: Router, gateway: Gateway, log: Logger): Router {
  const act = async (req: Request, what: "acknowledge" | "clear"): Promise<Response> => {
    if (!sameOrigin(req)) return json({ error: "cross-origin request refused" }, 403);
    if (!(req.headers.get("content-type") ?? "").includes("application/json")) {
      await req.body?.cancel();
      return json({ error: 'expected content-type application/json with {"key": "…"}' }, 415);
    }
    let key: unknown;
    try {
      key = (await readJson(req, MAX_BODY)).key;
    } catch (e) {
      if (e instanceof RequestError) return json({ error: e.message }, e.status);
      throw e;
    }
    if (typeof key !== "string" || key === "") {
      return json({ error: `"key": expected an alarm key (rule or rule[instance])` }, 400);
    }
    const edge = gateway.edge;
    if (!edge) return json({ error: "no rules are configured, so no alarm is active" }, 404);
    try {
      const result = what === "acknowledge"
        ? edge.acknowledge(key, "page")
        : edge.clear(key, "page");
      if (what === "clear") log.info("alarm cleared from the page", { alarm: key });
      return json({ [what === "acknowledge" ? "acknowledged" : "cleared"]: result });
    } catch (e) {
      if (e instanceof AlarmNotFoundError) return json({ error: e.message }, 404);
      throw e;
    }
  };
  return router
    .get("/api/alarms", (_req, { url }) => {
      const n = Math.min(500, Math.max(0, Number(url.searchParams.get("history") ?? "100") || 0));
      const edge = gateway.edge;
      const body: AlarmsResponse = {
        ...(edge ? edge.alarms(n) : { active: [], history: [] }),
        configured: edge?.hasRules ?? false,
        now: Date.now(),
      };
      return json(body);
    })
    .post("/api/alarms/acknowledge", (req) => act(req, "acknowledge"))
    .post("/api/alarms/clear", (req) => act(req, "clear"));
}
