/**
 * The registry of stable error codes. Codes travel in API answers, MQTT events and CLI output;
 * a code never changes meaning once released. Every code is documented in docs/error-codes.md
 * (a test enforces it).
 */
export const ERROR_CODES = {
  VALIDATION_FAILED: { status: 400, message: "The input failed validation" },
  PAYLOAD_MALFORMED: { status: 400, message: "The payload is not valid JSON" },
  STORE_REFUSED: {
    status: 422,
    message: "The message passed validation but storage refused it; it was acknowledged and is not stored",
  },
  BATCH_SET_ASIDE: {
    status: 422,
    message: "The cloud refused a telemetry batch, or never acknowledged it; the agent set it aside",
  },
  AUTH_REQUIRED: { status: 401, message: "Credentials are missing or wrong" },
  AUTH_THROTTLED: {
    status: 429,
    message: "Too many failed authentication attempts from this address; retry after the Retry-After seconds",
  },
  FORBIDDEN: { status: 403, message: "The credential may not do this" },
  NOT_FOUND: { status: 404, message: "No such route" },
  DEVICE_NOT_FOUND: { status: 404, message: "No device with this uuid" },
  DEVICE_EXISTS: { status: 409, message: "A device with this uuid is already registered" },
  DEVICE_RETIRED: { status: 409, message: "The device was retired when it was replaced; delete it to reuse its uuid" },
  DEVICE_OWNED_ELSEWHERE: { status: 409, message: "This uuid belongs to another organization" },
  ORGANIZATION_EXISTS: { status: 409, message: "An organization with this name already exists" },
  GROUP_NOT_FOUND: { status: 404, message: "No such group" },
  GROUP_EXISTS: { status: 409, message: "A sibling group already has this name" },
  GROUP_NOT_EMPTY: {
    status: 409,
    message: "The group holds devices or sub-groups; delete them first or use --recursive",
  },
  GROUP_MOVE_INVALID: {
    status: 400,
    message: "A group cannot move under itself or its own subtree, and the root cannot move",
  },
  TYPE_NOT_FOUND: { status: 404, message: "No such device type" },
  TYPE_EXISTS: { status: 409, message: "A device type with this name already exists" },
  TYPE_IN_USE: { status: 409, message: "Devices still use this device type" },
  USER_NOT_FOUND: { status: 404, message: "No such user" },
  USER_EXISTS: { status: 409, message: "A user with this email already exists" },
  CREDENTIAL_NOT_FOUND: { status: 404, message: "No such API credential" },
  CSV_INVALID: {
    status: 400,
    message: "The CSV file is malformed: no header row, an unknown or missing column, or broken quoting",
  },
  CSV_ROW_INVALID: { status: 400, message: "The CSV row does not have one cell per header column" },
  CSV_DUPLICATE_UUID: { status: 400, message: "This uuid already appears on an earlier row of the file" },
  LOGIN_FAILED: { status: 401, message: "Wrong email or password" },
  LOGIN_THROTTLED: {
    status: 429,
    message: "Too many failed logins for this account; retry after the Retry-After seconds",
  },
  LIVE_STREAMS_EXHAUSTED: {
    status: 429,
    message: "Too many live update streams are open, for this credential or in all; close one or retry later",
  },
  CSRF_INVALID: {
    status: 403,
    message: "A cookie session's state-changing request lacks the session's X-CSRF-Token header",
  },
  ENROLL_WINDOW_CLOSED: {
    status: 403,
    message:
      "No enrollment window is open for this device. Ask an operator to run `fieldgate-cloud devices reset-token <uuid>` (or add the device), then retry within the window",
  },
  ENROLL_TOKEN_INVALID: { status: 401, message: "The enrollment token is wrong, used, or for another device" },
  ENROLL_SIGNATURE_INVALID: { status: 401, message: "The factory-key signature does not verify" },
  ENROLL_REPLAYED: { status: 401, message: "This enrollment request was already used" },
  ENROLL_STALE: {
    status: 401,
    message: "The signed enrollment request is too old or from the future; check the clock",
  },
  ENROLL_METHOD_DISABLED: { status: 403, message: "This enrollment method is not enabled for the organization" },
  ENROLL_KEY_REUSED: {
    status: 409,
    message:
      "This public key was used by a revoked or superseded certificate of the device; generate a new key and send a CSR for it",
  },
  CSR_INVALID: { status: 400, message: "The CSR cannot be parsed, is not P-256, or its signature does not verify" },
  CERT_REVOKED: { status: 401, message: "The client certificate is revoked or superseded" },
  CERT_EXPIRED: {
    status: 401,
    message:
      "The certificate expired; an operator must run `fieldgate-cloud devices reset-token <uuid>` so the device can enroll again",
  },
  CERT_UNKNOWN: { status: 401, message: "The client certificate is not known to the registry" },
  CLIENT_ID_MISMATCH: { status: 401, message: "The MQTT client id must equal the certificate's uuid" },
  MQTT_PACKET_TOO_LARGE: {
    status: 413,
    message: "An MQTT packet announced more bytes than the cloud's --mqtt-max-packet-size; the connection was closed",
  },
  TOPIC_NOT_ALLOWED: { status: 403, message: "The topic is outside the device's own root or direction" },
  CONFIG_INVALID: { status: 400, message: "The configuration is invalid" },
  DESIRED_CONFIG_STORED_INVALID: {
    status: 409,
    message: "The stored desired config no longer matches this cloud's schema; set a new one",
  },
  DATA_DIR_LOCKED: {
    status: 409,
    message: "Another fieldgate-cloud process uses this data directory; stop it or use another --data-dir",
  },
  DATABASE_UNAVAILABLE: {
    status: 503,
    message: "The cloud's database cannot be used; start it or fix --database",
  },
  NOT_ENROLLED: { status: 409, message: "The agent has no operational identity yet" },
  CLOUD_UNREACHABLE: { status: 503, message: "The cloud cannot be reached" },
  STORAGE_FULL: {
    status: 503,
    message: "The agent's data directory is on a full filesystem; nothing new can be stored until space is freed",
  },
  OUTBOX_FULL: { status: 507, message: "The outbox reached its cap; the oldest readings were dropped" },
  LOCAL_API_IN_USE: {
    status: 409,
    message: "Another process already serves the agent's local API socket or port; is a second agent running?",
  },
  FIRMWARE_NOT_FOUND: { status: 404, message: "No such firmware image for this caller" },
  FIRMWARE_EXISTS: { status: 409, message: "An image with this name and version already exists" },
  FIRMWARE_IN_USE: { status: 409, message: "An active rollout or an unfinished job uses this image" },
  FIRMWARE_RANGE_INVALID: { status: 416, message: "The Range header asks for bytes the image does not have" },
  FIRMWARE_TOO_LARGE: { status: 413, message: "The image is larger than the cloud's firmware size limit" },
  FIRMWARE_SIGNING_KEY_MISSING: {
    status: 409,
    message: "The cloud has no firmware signing key; run `fieldgate-cloud firmware keygen` or upload with --signature",
  },
  FIRMWARE_SIGNATURE_INVALID: { status: 400, message: "The manifest signature does not verify with a trusted key" },
  FIRMWARE_HASH_MISMATCH: { status: 400, message: "The image's sha256 differs from the manifest's" },
  FIRMWARE_SIZE_MISMATCH: { status: 400, message: "The image's size differs from the manifest's" },
  FIRMWARE_IMAGE_CORRUPT: {
    status: 500,
    message: "The cloud's stored image differs from its manifest (size or sha256); it is not served",
  },
  FIRMWARE_INCOMPATIBLE: { status: 400, message: "The image is not made for this device type" },
  FIRMWARE_NOT_NEWER: { status: 409, message: "The image is not newer than the installed version (anti-rollback)" },
  AGENT_TOO_OLD: { status: 409, message: "The image needs a newer agent than the one installed" },
  // Update job reasons (issue #5): they travel in job status reports; the status says what kind of failure.
  UPDATES_DISABLED: { status: 403, message: "Firmware updates are disabled in the agent configuration" },
  DISK_FULL: { status: 507, message: "Not enough free disk space for the image (twice its size is needed)" },
  INSTALL_FAILED: { status: 500, message: "The installer failed; the old version is kept" },
  HEALTH_NOT_OK: { status: 504, message: "A gate check of the update was still critical at the confirm deadline" },
  CONFIRM_FAILED: { status: 500, message: "The configured confirmation command failed" },
  JOB_NOT_FOUND: { status: 404, message: "No such update job on this device" },
  JOB_TIMEOUT: { status: 504, message: "The update job did not finish within its timeout" },
  JOB_CANCELLED: { status: 409, message: "The cloud cancelled the update job before anything was installed" },
  UPDATE_INTERRUPTED: { status: 500, message: "The agent stopped during a step that cannot resume; it was undone" },
  UPDATE_BOOT_FAILED: {
    status: 500,
    message: "After activation the new version did not come up and confirm; the old version was restored",
  },
  // Rollouts (issue #5).
  ROLLOUT_NOT_FOUND: { status: 404, message: "No such rollout" },
  ROLLOUT_NO_DEVICES: { status: 400, message: "The rollout's target selects no device this credential may update" },
  ROLLOUT_STATE: { status: 409, message: "The rollout is not in a state that allows this" },
  FAILURE_THRESHOLD: { status: 409, message: "The rollout's failures crossed its failure threshold; it was aborted" },
  SUCCESS_THRESHOLD_NOT_MET: {
    status: 409,
    message: "A phase finished below the success threshold; the rollout holds",
  },
  ROLLBACK_UNAVAILABLE: { status: 409, message: "The device's previous version is unknown or no longer in the store" },
  // An event code, not an API answer: 504 because the device, like an upstream, did not answer in time.
  KEEPALIVE_MISSED: { status: 504, message: "The device sent nothing for longer than its type's keep-alive" },
  // BLE link troubles (issue #6): they travel as a link's lastError, never as API answers.
  LINK_BLE_UNAVAILABLE: {
    status: 503,
    message: "Bluetooth is not usable on this host: no adapter, no permission, or the adapter is off",
  },
  LINK_BLE_CONNECT_TIMEOUT: {
    status: 504,
    message: "The BLE peripheral did not complete the connection in time (powered off or out of range)",
  },
  LINK_BLE_DISCONNECTED: { status: 503, message: "The BLE peripheral disconnected or stopped answering" },
  LINK_BLE_GATT_FAILED: {
    status: 502,
    message: "A configured service or characteristic is missing on the peripheral, or a read or subscribe failed",
  },
  LINK_BLE_DECODE_FAILED: { status: 422, message: "A characteristic value does not fit its decoder (too short)" },
  // Serial link troubles and the link manager (issue #6): a link's lastError, and the `links` CLI.
  LINK_PORT_UNAVAILABLE: {
    status: 503,
    message:
      "The serial port cannot be opened, closed by itself, or vanished (unplugged?); it is reopened with backoff",
  },
  LINK_PATH_NOT_ALLOWED: {
    status: 403,
    message: "The serial link's path is outside the gateway's allowed link paths, or not a character device",
  },
  LINK_DRIVER_UNAVAILABLE: {
    status: 503,
    message: "A native binding the link needs is missing or does not load on this host; the link is unavailable",
  },
  LINK_STALE: { status: 504, message: "Nothing arrived on the link for longer than its staleAfter; it was reopened" },
  LINK_FRAMING: {
    status: 422,
    message: "Bytes that do not decode were dropped: garbage, an over-long line, a truncated frame or a CRC error",
  },
  LINK_TIMEOUT: { status: 504, message: "A Modbus unit did not answer a request within the timeout" },
  LINK_MODBUS_EXCEPTION: { status: 502, message: "A Modbus unit answered a request with an exception" },
  LINK_START_FAILED: { status: 500, message: "The link could not be built or started; the agent retries with backoff" },
  LINK_AGENT_UNREACHABLE: {
    status: 503,
    message: "The agent's local API does not answer; is the daemon running with localApi.enabled?",
  },
  INTERNAL: { status: 500, message: "Internal error" },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The body of every error answer, in the API and in device events. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  /** The field at fault, as a dotted path (`readings[0].value`), when one is. */
  field?: string;
}

/** An error that carries a stable code and, where known, the field at fault. */
export class FieldgateError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;
  readonly status: number;

  constructor(code: ErrorCode, message?: string, field?: string) {
    super(message ?? ERROR_CODES[code].message);
    this.name = "FieldgateError";
    this.code = code;
    this.field = field;
    this.status = ERROR_CODES[code].status;
  }

  toBody(): ErrorBody {
    return this.field === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, field: this.field };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}
