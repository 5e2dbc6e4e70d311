// @ts-check
/// <reference lib="dom" />
/**
 * The gateway page's cards (buffer, uplink, drops, version and update), served as
 * `/cards_script.js` and imported by `page.js`, which calls them with every dashboard poll.
 * Renders with `textContent` only.
 */
/** @typedef {import("./server.ts").DashboardResponse} Dashboard */
/** @typedef {Dashboard["status"]} Status */
/** @typedef {import("./history.ts").Drain} Drain */
/** @typedef {import("../update/mod.ts").UpdateStatus} UpdateStatus */
/** @typedef {Status["storage"]} WearStats */
/** @typedef {import("./common_script.js").DlRow} DlRow */
import { ago, fillList, fmtAge, fmtBytes, fmtCount, fmtRate } from "./common_script.js";

/**
 * The update state; `/status` types it loosely because the updater may not run in-process.
 * @param {Status} s
 */
export function updateOf(s) {
  return /** @type {UpdateStatus | undefined} */ (s.update);
}

/** @param {UpdateStatus | undefined} u */
export function slotText(u) {
  if (!u) return null;
  if (u.phase === "trial" && u.trial) return u.trial.slot + " (trial)";
  return u.committed ? u.committed.slot : null;
}

/**
 * @param {Drain} dr
 * @returns {[string, string | null]}
 */
function drainText(dr) {
  switch (dr.state) {
    case "empty":
      return ["nothing pending", "ok"];
    case "current":
      return ["keeping up", "ok"];
    case "draining":
      return ["≈ " + fmtAge(/** @type {number} */ (dr.seconds) * 1000), null];
    case "growing":
      return ["not shrinking", "warn"];
    case "offline":
      return ["waits for the uplink", "bad"];
    default:
      return ["no uplink", null];
  }
}

/** Storage written per day by the gateway and, with buffer.storageEndurance, years of life. */
/**
 * @param {WearStats | undefined} w
 * @returns {DlRow | null}
 */
function wearRow(w) {
  if (!w || w.bytesPerDay === null || w.bytesPerDay === undefined) return null;
  const life = w.lifeYears === null ? "" : ", card life " +
    (w.lifeYears >= 100 ? "over 100 years" : w.lifeYears.toFixed(1) + " years");
  const low = w.lifeYears !== null && w.lifeYears < 3;
  return [
    "Written to storage",
    fmtBytes(w.bytesPerDay) + "/day" + life,
    low ? "warn" : null,
    w.enduranceBytes
      ? "at the current rate, of " + (w.enduranceBytes / 1e12).toFixed(1) + " TB rated"
      : "set buffer.storageEndurance for the card's life",
  ];
}

/** @param {Dashboard} d */
export function renderBuffer(d) {
  const b = d.status.buffer;
  const drain = drainText(d.drain);
  const late = b.oldestPendingAgeMs !== null && b.oldestPendingAgeMs > 60000;
  fillList("buffer", [
    ["Pending", fmtCount(b.pending), "big" + (late ? " warn" : "")],
    [
      "Oldest pending",
      b.oldestPendingAgeMs === null ? "–" : fmtAge(b.oldestPendingAgeMs),
      late ? "warn" : null,
    ],
    ["Time to drain", drain[0], drain[1]],
    [
      "In / out",
      fmtRate(d.rates.acceptedPerSecond) + " / " +
      fmtRate(d.rates.forwardedPerSecond),
    ],
    ["Stored", fmtCount(b.rows) + " readings, " + fmtBytes(b.bytes)],
    b.atCap ? ["Cap", "at the " + b.atCap + " cap", "bad"] : null,
    wearRow(d.status.storage),
  ]);
}

/** @param {Dashboard} d */
export function renderUplink(d) {
  const s = d.status;
  const u = s.uplink;
  if (!u) {
    fillList("uplink", [["Uplink", "none configured"], ["Readings", "kept in the buffer only"]]);
    return;
  }
  const f = s.forwarder;
  fillList("uplink", [
    ["State", u.connected ? "Connected" : "Offline", "big " + (u.connected ? "ok" : "bad")],
    [
      u.connected ? "Connected for" : "Offline for",
      fmtAge(d.now - u.since),
      u.connected ? null : "bad",
    ],
    ["Target", u.type + " " + u.target, "wide"],
    u.lastError && !u.connected ? ["Last error", u.lastError, "wide bad"] : null,
    !u.connected && u.nextAttemptAt
      ? ["Next attempt", "in " + fmtAge(Math.max(0, u.nextAttemptAt - d.now))]
      : null,
    ["In flight", fmtCount(u.inflight)],
    f ? ["Forwarded", fmtCount(f.forwardedReadings) + " readings"] : null,
    f ? ["Last forward", ago(d.now, f.lastForwardedAt)] : null,
    f ? ["Retries", fmtCount(f.retries)] : null,
  ]);
}

/** @param {Status} s */
export function renderDrops(s) {
  const dr = s.drops;
  /** @type {Record<string, number>} */
  const inv = s.pipeline.invalid;
  const byReason = Object.keys(inv).filter((k) => inv[k] > 0).map((k) => k + " " + inv[k]);
  fillList("drops", [
    [
      "Invalid readings",
      fmtCount(dr.invalid),
      dr.invalid ? "warn" : null,
      byReason.length ? "by reason: " + byReason.join(", ") : "",
    ],
    [
      "New series over buffer.maxSeries",
      fmtCount(dr.seriesLimit ?? 0),
      dr.seriesLimit ? "bad" : null,
    ],
    [
      "Lost at a buffer cap",
      fmtCount(dr.droppedUnforwarded),
      dr.droppedUnforwarded ? "bad" : null,
    ],
    ["Refused, buffer full", fmtCount(dr.rejectedFull), dr.rejectedFull ? "bad" : null],
    [
      "Refused, disk full (sender resends)",
      fmtCount(dr.diskFull ?? 0),
      dr.diskFull ? "bad" : null,
    ],
    [
      "Refused, write failed (sender resends)",
      fmtCount(dr.writeFailed ?? 0),
      dr.writeFailed ? "bad" : null,
    ],
    ["Set aside (refused upstream)", fmtCount(dr.setAside), dr.setAside ? "warn" : null],
  ]);
}

/** @param {Dashboard} d */
export function renderUpdate(d) {
  const s = d.status;
  const u = updateOf(s);
  if (!u) {
    fillList("update", [["Version", s.version, "big"], ["Self-update", "not configured"]]);
    return;
  }
  const lc = u.lastCheck;
  const rb = u.lastRollback;
  fillList("update", [
    ["Version", s.version, "big"],
    ["Slot", slotText(u) || "–"],
    ["Phase", u.phase || "–", u.phase === "trial" ? "warn" : null],
    u.activity ? ["Activity", u.activity] : null,
    u.metadataStale ? ["Release metadata", u.metadataStale, "bad"] : null,
    u.committed ? ["Committed", u.committed.version + " in slot " + u.committed.slot] : null,
    u.staged ? ["Staged", u.staged.version + " in slot " + u.staged.slot, "warn"] : null,
    lc
      ? [
        "Last check",
        lc.result + (lc.version ? " " + lc.version : "") + ", " + ago(d.now, lc.at),
        lc.result === "refused" ? "bad" : null,
        lc.reason || "",
      ]
      : ["Last check", "not yet"],
    rb ? ["Last rollback", rb.version + ", " + ago(d.now, rb.at), "warn", rb.reason] : null,
  ]);
}
