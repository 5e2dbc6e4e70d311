/**
 * The metric families of alarms, edge stages, remote commands by outcome and the arrival age of
 * the pending backlog, for {@linkcode renderMetrics} (`metrics.ts`).
 *
 * @module
 */
import type { AlarmMetrics } from "../edge/mod.ts";
import type { GatewayStatus } from "../gateway.ts";

/** One metric family as `renderMetrics` writes it. */
export interface Family {
  name: string;
  type: "counter" | "gauge";
  help: string;
  samples: [Record<string, string>, number][] | number;
}

/** The outcomes `outpost_commands_total` always lists for a command that has run. */
const COMMAND_RESULTS = ["done"];

/** Families for alarms, the edge stages, commands by outcome and the backlog's arrival age. */
export function edgeFamilies(
  status: GatewayStatus,
  alarms: AlarmMetrics | undefined,
  now: number,
): Family[] {
  const out: Family[] = [];
  const b = status.buffer;
  out.push({
    name: "outpost_buffer_oldest_pending_arrival_age_seconds",
    type: "gauge",
    help: "How long the oldest pending reading has waited in the buffer since the gateway " +
      "stored it (0 when nothing is pending). Unlike the source-timestamp age, backdated " +
      "readings do not make it large; after a restart it counts from the restart.",
    samples: b.oldestPendingArrivalTs == null
      ? 0
      : Math.max(0, (now - b.oldestPendingArrivalTs) / 1000),
  });
  const s = status.alarms;
  if (s) {
    out.push({
      name: "outpost_alarms",
      type: "gauge",
      help: "Active alarms, by whether an operator acknowledged them.",
      samples: [[{ state: "unacknowledged" }, s.active], [
        { state: "acknowledged" },
        s.acknowledged,
      ]],
    });
  }
  if (alarms) {
    out.push({
      name: "outpost_alarm_active",
      type: "gauge",
      help: "1 while the alarm is active, else 0: one per rule, and one per active instance of a " +
        "rule with a glob (instance names the device, or device/metric).",
      samples: alarms.alarms.map((a) => [
        { rule: a.rule, instance: a.instance, severity: a.severity },
        a.active ? 1 : 0,
      ]),
    });
    out.push({
      name: "outpost_alarm_transitions_total",
      type: "counter",
      help: "Alarm transitions since the gateway started, by rule and the state moved to " +
        "(raised, cleared, acknowledged).",
      samples: alarms.transitions.map((t) => [{ rule: t.rule, to: t.to }, t.count]),
    });
  }
  const e = status.edge;
  if (e?.filtered) {
    out.push({
      name: "outpost_edge_filtered_total",
      type: "counter",
      help: "Readings dropped by the edge filters, by filter (range, deadband, throttle, spike).",
      samples: Object.entries(e.filtered).map(([reason, n]) => [{ reason }, n]),
    });
  }
  if (e?.aggregate) {
    out.push({
      name: "outpost_edge_windows_total",
      type: "counter",
      help: "Aggregation windows closed and emitted.",
      samples: e.aggregate.windows,
    }, {
      name: "outpost_edge_late_samples_total",
      type: "counter",
      help: "Samples that arrived for an aggregation window already closed (in no window).",
      samples: e.aggregate.late,
    });
  }
  if (e) {
    out.push({
      name: "outpost_edge_actions_total",
      type: "counter",
      help: "Rule actions started (write, mqtt, webhook, log), by result so far: failed, or " +
        "started (which includes the failed ones).",
      samples: [[{ result: "started" }, e.actions.run], [{ result: "failed" }, e.actions.failed]],
    }, {
      name: "outpost_edge_actions_pending",
      type: "gauge",
      help: "Rule actions started and not finished.",
      samples: e.actions.pending,
    });
  }
  if (e?.lane) {
    out.push({
      name: "outpost_alarm_events_queued",
      type: "gauge",
      help: "Alarm events waiting for the uplink (kept across restarts).",
      samples: e.alarmsQueued,
    }, {
      name: "outpost_alarm_events_sent_total",
      type: "counter",
      help: "Alarm events confirmed by the uplink.",
      samples: e.lane.sent,
    }, {
      name: "outpost_alarm_events_failed_total",
      type: "counter",
      help: "Alarm event sends that failed and will be repeated.",
      samples: e.lane.failed,
    });
  }
  const cmds = (status as { commands?: { byCommand?: Record<string, Record<string, number>> } })
    .commands;
  if (cmds?.byCommand) {
    const samples: [Record<string, string>, number][] = [];
    for (const [command, results] of Object.entries(cmds.byCommand)) {
      const all = { ...Object.fromEntries(COMMAND_RESULTS.map((r) => [r, 0])), ...results };
      for (const [result, n] of Object.entries(all)) samples.push([{ command, result }, n]);
    }
    out.push({
      name: "outpost_commands_total",
      type: "counter",
      help: "Remote commands run, by command and outcome (done, accepted for a final reply " +
        "after a restart, or the error code).",
      samples,
    });
  }
  return out;
}
