import mqtt, { type MqttClient } from "mqtt";
import {
  type CommandReply,
  type CommandRequest,
  importOperatorKeys,
  parseCommandTopic,
  type QueryArgs,
  type QueryRow,
  verifyRequest,
} from "../../src/protocol/mod.ts";

/** How a fake gateway misbehaves, to exercise the console's checks. */
export type Quirk =
  | "mute" // never replies
  | "refuse" // replies with an error
  | "accept-only" // replies accepted, never a final reply
  | "duplicate-pages" // every page twice
  | "reverse-pages" // pages in reverse order (final last)
  | "drop-page-1" // page 1 never sent, counted in the final reply
  | "slow-restart" // restarts only after 1.5 s
  | "stop-at-50"; // a query stops after 50 rows with complete: false (resume with afterSeq)

/** Options of {@linkcode startFakeGateway}. */
export interface FakeGatewayOptions {
  url: string;
  id: string;
  version?: string;
  prefix?: string;
  backlog?: number;
  quirks?: Quirk[];
  /** Stored rows `query` pages through. */
  rows?: QueryRow[];
  /** Operator public keys: when given, unsigned or badly signed requests are refused. */
  operatorKeys?: string[];
  /** The scopes its ping reply says it grants the signing key (default: all). */
  scopes?: string[];
  /** Extra fields of the retained status (site, alarms, pageUrl, …). */
  statusFields?: Record<string, unknown>;
  /** The result of `status` (default: the retained status). */
  statusResult?: Record<string, unknown>;
  /** The lines `logs` answers with, as the real gateway shapes them. */
  logLines?: Record<string, unknown>[];
  /** The text `config-get` answers with. */
  configYaml?: string;
}

/**
 * A stand-in gateway for console tests: one MQTT connection with a retained status and last
 * will, answering commands per src/protocol/mod.ts (ping, restart, query, update-check).
 */
export interface FakeGateway {
  id: string;
  startedAt: number;
  /** Requests received, with the target segment of their topic. */
  requests: { cmd: string; target: string; req: CommandRequest }[];
  /** Drops the TCP connection without DISCONNECT: the broker publishes the last will. */
  crash(): void;
  close(): Promise<void>;
}

/** Starts a fake gateway; resolves once its status is retained on the broker. */
export async function startFakeGateway(o: FakeGatewayOptions): Promise<FakeGateway> {
  const prefix = o.prefix ?? "gateways";
  const quirks = new Set(o.quirks ?? []);
  const statusTopic = `${prefix}/${o.id}/status`;
  const version = o.version ?? "1.0.0";
  const keys = o.operatorKeys ? await importOperatorKeys(o.operatorKeys) : undefined;
  const will = {
    gatewayId: o.id,
    state: "offline",
    version,
    ts: Date.now(),
    reason: "connection lost (last will)",
  };
  const client: MqttClient = await mqtt.connectAsync(o.url, {
    clientId: `fake-${o.id}`,
    reconnectPeriod: 0,
    will: { topic: statusTopic, payload: JSON.stringify(will), qos: 1, retain: true },
  });
  const gw: FakeGateway = {
    id: o.id,
    startedAt: Date.now(),
    requests: [],
    crash: () => client.stream.destroy(),
    close: async () => {
      await client.endAsync(true).catch(() => {});
    },
  };
  const status = (state: "online" | "offline", reason?: string) =>
    client.publishAsync(
      statusTopic,
      JSON.stringify({
        gatewayId: o.id,
        state,
        version,
        ts: Date.now(),
        backlog: o.backlog ?? 0,
        oldestPendingAgeMs: o.backlog ? 5000 : null,
        startedAt: gw.startedAt,
        ...o.statusFields,
        ...(reason ? { reason } : {}),
      }),
      { qos: 1, retain: true },
    );
  const reply = (req: { id: string | null }, cmd: string, r: Partial<CommandReply>) =>
    client.publishAsync(
      `${prefix}/${o.id}/reply`,
      JSON.stringify({
        id: req.id,
        gatewayId: o.id,
        cmd,
        ts: Date.now(),
        final: false,
        status: "done",
        ...r,
      }),
      { qos: 1 },
    );

  const query = async (req: CommandRequest) => {
    const a = req.args as unknown as QueryArgs;
    const from = typeof a.from === "number" ? a.from : -Infinity;
    const to = typeof a.to === "number" ? a.to : Infinity;
    const pageRows = Math.min(a.pageRows ?? 100, 100);
    const match = (o.rows ?? []).filter((r) =>
      r[2] === a.device && (a.metric === undefined || r[3] === a.metric) && r[1] >= from &&
      r[1] < to && r[0] > (a.afterSeq ?? 0)
    );
    const cap = quirks.has("stop-at-50") ? 50 : a.limit;
    const limited = cap !== undefined ? match.slice(0, cap) : match;
    const pages: QueryRow[][] = [];
    for (let i = 0; i < limited.length; i += pageRows) pages.push(limited.slice(i, i + pageRows));
    const order = pages.map((_, i) => i);
    if (quirks.has("reverse-pages")) order.reverse();
    for (const n of order) {
      if (n === 1 && quirks.has("drop-page-1")) continue;
      const page = {
        status: "page" as const,
        page: n,
        result: { columns: [], rows: pages[n], lastSeq: pages[n].at(-1)![0] },
      };
      await reply(req, "query", page);
      if (quirks.has("duplicate-pages")) await reply(req, "query", page);
    }
    await reply(req, "query", {
      final: true,
      status: "done",
      result: {
        rows: limited.length,
        pages: pages.length,
        lastSeq: limited.at(-1)?.[0] ?? null,
        complete: limited.length === match.length,
      },
    });
  };

  const handle = async (topic: string, text: string) => {
    const t = parseCommandTopic(prefix, topic);
    if (!t) return;
    let req: CommandRequest;
    try {
      req = JSON.parse(text);
    } catch {
      return reply({ id: null }, t.cmd, {
        final: true,
        status: "error",
        error: { code: "malformed", message: "not JSON" },
      });
    }
    gw.requests.push({ cmd: t.cmd, target: t.target, req });
    if (quirks.has("mute")) return;
    if (keys) {
      const bad = await verifyRequest(keys, t.cmd, t.target, req);
      if (bad) return reply(req, t.cmd, { final: true, status: "error", error: bad });
    }
    if (quirks.has("refuse")) {
      return reply(req, t.cmd, {
        final: true,
        status: "error",
        error: { code: "failed", message: "refused by a test quirk" },
      });
    }
    if (quirks.has("accept-only")) return reply(req, t.cmd, { status: "accepted" });
    switch (t.cmd) {
      case "ping":
        return reply(req, t.cmd, {
          final: true,
          result: {
            pong: true,
            version,
            // As the real gateway: the scopes it grants the signing key (all here).
            ...(keys
              ? { operator: { keyid: req.keyid, scopes: o.scopes ?? ["read", "operate", "admin"] } }
              : {}),
          },
        });
      case "update-check":
        return reply(req, t.cmd, {
          final: true,
          status: "error",
          error: { code: "unavailable", message: "self-update is not configured" },
        });
      case "restart":
        // As the real gateway: accepted, restart, then the final reply from the new start.
        await reply(req, t.cmd, { status: "accepted" });
        if (quirks.has("slow-restart")) await new Promise((r) => setTimeout(r, 1500));
        await status("offline", "stopped");
        gw.startedAt = Date.now() + 1;
        await status("online");
        return reply(req, t.cmd, { final: true, result: { restarted: true } });
      case "query":
        return await query(req);
      case "status":
        return reply(req, t.cmd, {
          final: true,
          result: o.statusResult ?? { gatewayId: o.id, version, startedAt: gw.startedAt },
        });
      case "logs":
        return reply(req, t.cmd, {
          final: true,
          result: { lines: o.logLines ?? [], truncated: false },
        });
      case "config-get":
        return reply(req, t.cmd, {
          final: true,
          result: { path: "/etc/outpost/site.yaml", yaml: o.configYaml ?? "" },
        });
      default:
        return reply(req, t.cmd, {
          final: true,
          status: "error",
          error: { code: "unknown-command", message: `no command "${t.cmd}"` },
        });
    }
  };
  client.on("message", (topic, payload) => {
    handle(topic, payload.toString()).catch(() => {});
  });
  await client.subscribeAsync([`${prefix}/${o.id}/cmd/+`, `${prefix}/fleet/cmd/+`], { qos: 1 });
  await status("online");
  return gw;
}
