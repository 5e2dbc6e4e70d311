/**
 * The operator's fleet console (`outpost fleet …`): an MQTT client that sees every gateway's
 * status, sends signed commands and follows their replies, exports buffered readings as CSV,
 * and serves a small web page. This is the folder's public surface; the rest is internal to
 * `src/fleet/`.
 *
 * The gateway's side (the commands it answers) lives in `src/commands/`; the two share only the
 * protocol module, `src/protocol/mod.ts`.
 */
export { FLEET_COMMAND, FLEET_HELP, type FleetIo, fleetMain } from "./cli.ts";
export {
  Fleet,
  type FleetConnection,
  FleetError,
  type FleetOptions,
  type GatewayView,
} from "./client.ts";
export { formatGrant } from "./format.ts";
export { type CommandRun, expectsRestart, type RunSummary, type TargetResult } from "./run.ts";
