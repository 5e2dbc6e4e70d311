import type { AlarmEvent } from "./alarm_store.ts";

/**
 * Fills `{rule}`, `{instance}`, `{state}`, `{severity}`, `{device}`, `{metric}`, `{value}`,
 * `{message}`, `{ts}`; fields an event lacks become empty.
 */
export function fill(template: string, e: AlarmEvent): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => {
    const v = (e as unknown as Record<string, unknown>)[k];
    return v === undefined ? (k in EMPTY ? "" : m) : String(v);
  });
}

const EMPTY = { instance: 1, device: 1, metric: 1, value: 1 };
