/** How bad an event is; the console and the CLI colour it. */
export type EventSeverity = "info" | "warning" | "error";

interface EventCodeEntry {
  /** The severities this code is recorded with (most codes have one). */
  readonly severities: readonly EventSeverity[];
  /** One line on when the cloud records it; docs/events.md says more. */
  readonly description: string;
}

/**
 * Every code the cloud itself records in a device's history (docs/events.md, "Codes the cloud
 * records"; a doc test checks both ways). Events a device reports on its `events` topic carry
 * their own codes and are not listed here.
 */
export const EVENT_CODES = {
  DEVICE_ONLINE: { severities: ["info"], description: "the device connected to the broker" },
  DEVICE_OFFLINE: {
    severities: ["info", "warning"],
    description: "the device went offline: info for a clean disconnect or the cloud stopping, else warning",
  },
  HEALTH_CHANGED: { severities: ["info", "warning", "error"], description: "the device's health colour changed" },
  KEEPALIVE_MISSED: {
    severities: ["error"],
    description: "a device of a type with a keep-alive sent nothing for that many minutes (once per silence)",
  },
  CERT_REVOKED: {
    severities: ["warning"],
    description: "a connection was refused: the certificate is revoked or superseded",
  },
  CLIENT_ID_MISMATCH: {
    severities: ["warning"],
    description: "a connection was refused: its client id differs from the certificate's uuid",
  },
  CLIENT_ID_CONFLICT: {
    severities: ["warning"],
    description: "three or more connections took over the device's session within a minute",
  },
  MQTT_PACKET_TOO_LARGE: {
    severities: ["warning"],
    description: "the device announced a packet over --mqtt-max-packet-size; the connection was closed",
  },
  TOPIC_NOT_ALLOWED: {
    severities: ["warning"],
    description: "a publish or subscribe outside the device's own topics was refused",
  },
  PAYLOAD_MALFORMED: { severities: ["error"], description: "a message on a device topic was not JSON" },
  VALIDATION_FAILED: { severities: ["error"], description: "a message (or one reading of a batch) failed its schema" },
  STORE_REFUSED: { severities: ["error"], description: "a message passed its schema but storage refused it" },
  JOB_NOT_FOUND: { severities: ["warning"], description: "the device reported a status for a job that is not its own" },
  FIRMWARE_IMAGE_CORRUPT: {
    severities: ["error"],
    description: "the stored image of the device's job no longer matches its manifest; the job failed",
  },
} as const satisfies Record<string, EventCodeEntry>;

/** A code the cloud records. */
export type EventCode = keyof typeof EVENT_CODES;

/** The severities code `C` may be recorded with. */
export type SeverityOf<C extends EventCode> = (typeof EVENT_CODES)[C]["severities"][number];
