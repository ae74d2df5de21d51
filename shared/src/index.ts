export * from "./ble-link-schema.js";
export * from "./bulk-schemas.js";
export * from "./config-schemas.js";
export * from "./duration.js";
export * from "./errors.js";
export * from "./firmware-schemas.js";
export * from "./fleet-schemas.js";
export * from "./link-common.js";
export * from "./link-schemas.js";
export * from "./log-format.js";
export * from "./rollout-schemas.js";
export * from "./schemas.js";
export * from "./terminal-text.js";
export * from "./topics.js";
export * from "./validation.js";

/** The wire protocol version, carried in the topic root and in every message's `v`. */
export const PROTOCOL_VERSION = 1;
