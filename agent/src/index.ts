/** Public API of the agent package: the composition root and the capabilities it wires. */
export { Agent, type AgentOverrides, outboxPath } from "./agent.js";
export type { AgentConfig, AgentConfigFile } from "./config/config-schema.js";
export { deriveDeviceUuid, uuidFromMachineId } from "./config/device-uuid.js";
export { envNameForPath, envOverrideTable, loadConfig } from "./config/load-config.js";
export { type Enroller, EnrollmentClient, errorFromAnswer } from "./enrollment/enrollment-client.js";
export { EnrollmentLoop } from "./enrollment/enrollment-loop.js";
export { generateKeyAndCsr } from "./identity/csr.js";
export { FactoryKey, generateFactoryKey } from "./identity/factory-key.js";
export { type Identity, type IdentityInfo, IdentityStore, identityPaths } from "./identity/identity-store.js";
export { OutboxPublisher } from "./outbox/outbox-publisher.js";
export type { Backlog, OutboxStore, StoredBatch } from "./outbox/outbox-store.js";
export { OutboxWriter, type ReadingSink } from "./outbox/outbox-writer.js";
export { SqliteOutboxStore } from "./outbox/sqlite-outbox-store.js";
export { type AgentStatus, readStatus } from "./status/status-file.js";
export { SystemSampler } from "./telemetry/system-sampler.js";
export { type MessageSink, MqttSession, type SessionState } from "./transport/mqtt-session.js";
