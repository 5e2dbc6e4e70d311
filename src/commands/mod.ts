/**
 * The commands a gateway answers: requests arrive on the MQTT uplink's connection, are checked
 * (shape, signature, replay window, allow-list), run and answered as `src/protocol/mod.ts`
 * describes. This is the folder's public surface; the rest is internal to `src/commands/`.
 *
 * The operator's side (the fleet console) lives in `src/fleet/`; the two share only the
 * protocol module.
 */
export { type AuditEntry, auditPath, readAuditFile } from "./audit.ts";
export { createCommandService, type CreateCommandServiceOptions } from "./builtin.ts";
export {
  checkCommandsConfig,
  type CommandsConfig,
  commandsSchema,
  type OperatorKeyConfig,
} from "./config.ts";
export {
  type CommandContext,
  CommandError,
  type CommandHandler,
  CommandService,
  type CommandsStatus,
  type ExtraHandlers,
  type HandlerOptions,
} from "./service.ts";
export { updateCommands, type UpdateCommandsOptions } from "./update.ts";
