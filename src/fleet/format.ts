/** Terminal rendering of the fleet console: the gateway table and command progress. */
import type { GatewayView } from "./client.ts";
import type { RunSummary, TargetResult } from "./run.ts";
import { fitsOneLine, formatFullResult } from "./results.ts";

/** A duration for people: `42s`, `17m`, `5.2h`, `3.0d`; `-` for none. */
export function formatAge(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "-";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86400).toFixed(1)}d`;
}

/** An elapsed time, with tenths under 10 s: `0.4s`, `7.1s`, `42s`, `3m`. */
export function formatElapsed(ms: number): string {
  return ms < 9950 ? `${(Math.max(0, ms) / 1000).toFixed(1)}s` : formatAge(ms);
}

/** Lays out rows under a header; numeric columns (`right`) are right-aligned. */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  right: ReadonlySet<number> = new Set(),
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) =>
      i === cells.length - 1 && !right.has(i)
        ? c
        : right.has(i)
        ? c.padStart(widths[i])
        : c.padEnd(widths[i])
    ).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** The state column: `online`, `offline`, or `stale` for an online status not refreshed. */
export function stateLabel(g: Pick<GatewayView, "state" | "stale">): string {
  return g.state === "offline" ? "offline" : g.stale ? "stale" : "online";
}

/**
 * The gateway table of `outpost fleet list`, with a totals line. HOST CHECKS is the verdict of
 * `outpost doctor` (`?`: not published), DEVICE UPDATES the rollouts per class (`-`: none).
 */
export function formatFleetTable(gateways: readonly GatewayView[], now = Date.now()): string {
  if (gateways.length === 0) return "no gateway has published a status yet";
  const rows = gateways.map((g) => [
    g.id,
    stateLabel(g),
    g.version ?? "-",
    g.backlog === null ? "-" : String(g.backlog),
    formatAge(g.oldestPendingAgeMs),
    g.lastSeen === null ? "-" : `${formatAge(now - g.lastSeen)} ago`,
    g.doctor?.label ?? "?",
    g.deviceUpdates?.label ?? "-",
    g.state === "offline" && g.reason ? g.reason : g.statusNote ?? "",
  ]);
  const online = gateways.filter((g) => g.state === "online").length;
  const stale = gateways.filter((g) => g.stale).length;
  const table = formatTable(
    [
      "GATEWAY",
      "STATE",
      "VERSION",
      "BACKLOG",
      "OLDEST PENDING",
      "LAST SEEN",
      "HOST CHECKS",
      "DEVICE UPDATES",
      "NOTE",
    ],
    rows,
    new Set([3, 4]),
  );
  return `${table}\n\n${gateways.length} gateway(s): ${online} online${
    stale ? ` (${stale} stale)` : ""
  }, ${gateways.length - online} offline`;
}

/** A short account of a result or error reply, one line. */
export function describeOutcome(t: TargetResult): string {
  if (t.error) return `${t.error.code}: ${t.error.message}`;
  const parts: string[] = [];
  if (t.after) {
    parts.push(
      `back after ${formatElapsed((t.finishedAt ?? t.sentAt) - t.sentAt)}, version ${
        t.after.version ?? "?"
      }${
        t.before.version && t.after.version && t.before.version !== t.after.version
          ? ` (was ${t.before.version})`
          : ""
      }`,
    );
  }
  if (t.note) parts.push(t.note);
  const pong = t.result as { pong?: unknown; version?: unknown; operator?: unknown } | null;
  const resumed = t.result as Partial<Record<"was" | "class" | "name" | "version", unknown>>;
  if (resumed?.was === "stopped" && typeof resumed.class === "string") {
    // devices-resume: the whole result follows below the table.
    parts.push(`resumed ${resumed.class} (${resumed.name} ${resumed.version})`);
  } else if (pong?.pong === true && !t.after) {
    parts.push(
      [
        "pong",
        ...(typeof pong.version === "string" ? [`version ${pong.version}`] : []),
        ...(pong.operator !== undefined ? [formatGrant(pong.operator)] : []),
      ].join(", "),
    );
  } else if (t.result !== undefined && t.result !== null && !t.after) parts.push(brief(t.result));
  if (t.progress && !t.finished) {
    parts.push(
      `${t.progress.done}${t.progress.total !== undefined ? `/${t.progress.total}` : ""}${
        t.progress.note ? ` ${t.progress.note}` : ""
      }`,
    );
  }
  return parts.join("; ");
}

/** What a gateway grants the console's key: `key alice (0123…): read, operate`, or `unsigned`. */
export function formatGrant(operator: unknown): string {
  if (operator === undefined) return "scopes unknown";
  const o = operator as { keyid?: string; name?: string; scopes?: string[] } | null;
  if (!o?.keyid) return "unsigned (no operator key)";
  return `key ${o.name ? `${o.name} (${o.keyid})` : o.keyid}: ${
    o.scopes?.length ? o.scopes.join(", ") : "no scopes"
  }`;
}

/** A result that fits one line as it is; a longer one is only named (printed whole below). */
function brief(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return fitsOneLine(s) ? s : `result of ${s.length} characters, printed whole below`;
}

/** One progress line: `restart: 3 of 20 replied, 2 done, 1 failed — gw-07 restarted …`. */
export function formatProgress(s: RunSummary, t?: TargetResult): string {
  const head = `${s.cmd}: ${s.replied} of ${s.total} replied, ${s.ok} ok${
    s.failed ? `, ${s.failed} failed` : ""
  }${s.timedOut ? `, ${s.timedOut} timed out` : ""}`;
  if (!t) return head;
  const what = describeOutcome(t);
  return `${head} — ${t.gatewayId} ${t.state}${what ? ` (${what})` : ""}`;
}

/**
 * Every result the table could not hold whole, one section per gateway: query rows as CSV, log
 * lines, the config, JSON otherwise. Empty when the table said it all.
 */
export function formatFullResults(cmd: string, results: readonly TargetResult[]): string {
  const out: string[] = [];
  for (const t of sortById(results)) {
    const text = formatFullResult(cmd, t);
    // A restart's result is its "back after" line; a short one is in the table already.
    if (text === undefined || t.after || (!t.pages?.length && fitsOneLine(text))) continue;
    out.push(`== ${t.gatewayId}: ${cmd} ==\n${text}`);
  }
  return out.join("\n\n");
}

function sortById(results: readonly TargetResult[]): TargetResult[] {
  return [...results].sort((a, b) =>
    a.gatewayId.localeCompare(b.gatewayId, "en", { numeric: true })
  );
}

/** The final per-gateway table of a command run. */
export function formatResults(results: readonly TargetResult[]): string {
  const rows = sortById(results)
    .map((t) => [
      t.gatewayId,
      t.state,
      t.finishedAt ? formatElapsed(t.finishedAt - t.sentAt) : "-",
      describeOutcome(t),
    ]);
  return formatTable(["GATEWAY", "RESULT", "AFTER", "DETAIL"], rows);
}
