/**
 * The durable buffer of readings: the `Buffer` facade and its types, the CSV export of stored
 * readings, and the flash wear meter.
 *
 * @module
 */
export * from "./buffer.ts";
export {
  countReadings,
  CSV_HEADER,
  csvField,
  csvLine,
  type ExportFilter,
  exportReadings,
  type ExportRow,
} from "./export.ts";
export {
  EnduranceSchema,
  lifeYears,
  parseEndurance,
  parseWriteBytes,
  WearMeter,
  type WearMeterOptions,
  type WearStats,
} from "./wear.ts";
