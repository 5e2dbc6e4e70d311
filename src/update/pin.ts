/**
 * The operator's holds on self-update, kept in `pin.json` under the install root apart from
 * state.json, so that `outpost update pin`/`unpin` can write it while the gateway runs (the
 * gateway only reads it, at each check).
 *
 * @module
 */
import { SlotError } from "./errors.ts";
import { otherSlot, recordOutcome, type Slots, writeFileAtomic } from "./slots.ts";
import { reportedVersion } from "./probe.ts";

/** Contents of `pin.json`. */
export interface Pin {
  /** Set: no release is installed until `outpost update unpin`. */
  pinned?: { at: number; reason: string; version: string };
  /** A version rolled back before that the operator allowed again (`unpin`). */
  allow?: string;
}

/** The pin file of an install root. */
export function pinFile(slots: Slots): string {
  return `${slots.root}/pin.json`;
}

/** Reads `pin.json`; an empty pin when there is none. Throws SlotError when it is unreadable. */
export async function readPin(slots: Slots): Promise<Pin> {
  let text: string;
  try {
    text = await Deno.readTextFile(pinFile(slots));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw new SlotError(`Cannot read "${pinFile(slots)}": ${(e as Error).message}`, { cause: e });
  }
  try {
    const p = JSON.parse(text);
    if (!p || typeof p !== "object") throw new Error("not an object");
    return p as Pin;
  } catch (e) {
    throw new SlotError(`"${pinFile(slots)}" is not a pin file: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Pins the committed version: no release is installed until {@linkcode unpin}. */
export async function pin(slots: Slots, reason: string): Promise<Pin> {
  const state = await slots.readState();
  const p: Pin = {
    ...await readPin(slots),
    pinned: { at: Date.now(), reason, version: state.committed.version },
  };
  await writeFileAtomic(pinFile(slots), JSON.stringify(p, null, 2) + "\n");
  return p;
}

/**
 * Lifts the operator's hold: removes the pin and allows again the version last rolled back
 * from (it is installed at the next check when the channel still offers it). Returns that
 * version, if any.
 */
export async function unpin(slots: Slots): Promise<string | undefined> {
  const state = await slots.readState();
  const allow = state.lastRollback?.version;
  if (allow) {
    await writeFileAtomic(pinFile(slots), JSON.stringify({ allow }, null, 2) + "\n");
  } else {
    await Deno.remove(pinFile(slots)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
  return allow;
}

/**
 * Rolls back by hand, with the gateway stopped: `current` to the other slot, which becomes the
 * committed version, and the version rolled back from is recorded so that the updater does not
 * install it again until a newer release or {@linkcode unpin}. Refuses during a trial (the next
 * start settles it) and when the other slot holds nothing that runs.
 */
export async function rollbackByHand(
  slots: Slots,
  reason: string,
): Promise<{ from: string; to: string }> {
  const state = await slots.readState();
  if (state.phase === "trial") {
    throw new SlotError(
      `a trial of ${state.trial?.version} is in progress; start the gateway to settle it first`,
    );
  }
  const slot = otherSlot(state.committed.slot);
  let to: string;
  try {
    to = await reportedVersion(slots.binary(slot));
  } catch (e) {
    throw new SlotError(
      `slot ${slot} (${slots.binary(slot)}) holds no version that runs: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const from = state.committed.version;
  // `current` first: a cut before the state is written leaves the state naming the slot to
  // roll back from, and running this again finishes the job.
  await slots.switchTo(slot);
  const at = Date.now();
  state.committed = { slot, version: to };
  state.lastRollback = { at, version: from, reason };
  recordOutcome(state, { at, result: "rolled-back", version: from, reason });
  await slots.writeState(state);
  await Deno.remove(`${slots.root}/trial.env`).catch(() => {});
  await Deno.remove(`${slots.root}/trial-boots`).catch(() => {});
  // A pin allowing the version rolled back from would let it back in at once.
  const p = await readPin(slots);
  if (p.allow === from) {
    delete p.allow;
    await writeFileAtomic(pinFile(slots), JSON.stringify(p, null, 2) + "\n");
  }
  return { from, to };
}
