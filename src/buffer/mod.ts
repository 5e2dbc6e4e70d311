/** The durable buffer of readings. */
export * from "./buffer.ts";
