/**
 * What a config reload (SIGHUP, `systemctl reload`, the `config-set` command) does not apply: the
 * sections a gateway reads once at start. The reload logs them, and `config-set` names them in its
 * reply, so nobody believes a changed listen address or device rollout is live when it is not.
 */
import type { GatewayConfig } from "./gateway.ts";

/** The keys that differ between `was` and `next` and take effect only after a restart. */
export function restartOnly(was: GatewayConfig, next: GatewayConfig): string[] {
  const differ = (a: unknown, b: unknown) => JSON.stringify(a) !== JSON.stringify(b);
  const out: string[] = [];
  if (was.buffer.path !== next.buffer.path) out.push("buffer.path");
  for (const key of ["http", "log", "update", "devices"] as const) {
    if (differ(was[key], next[key])) out.push(key);
  }
  return out;
}
