/**
 * Firmware image manifests (issue #5): the schema both sides validate, the canonical text the
 * Ed25519 signature covers, and the version comparison behind anti-rollback.
 */
import { createHash, createPublicKey, verify } from "node:crypto";
import { type Static, Type } from "@sinclair/typebox";
import semver from "semver";

/** Strict semver 2.0.0 (semver.org's recommended pattern): no leading "v", no leading zeros. */
export const SEMVER_PATTERN =
  "^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-((?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\\.(?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$";

/** An image name: also a directory name in the store, so no slashes or dots at the start. */
export const FIRMWARE_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$";
/** A device type's firmware compatibility id. */
export const FIRMWARE_COMPAT_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$";

export const SemverString = Type.String({ pattern: SEMVER_PATTERN, maxLength: 128, description: "semver 2.0.0" });
export const FirmwareName = Type.String({ pattern: FIRMWARE_NAME_PATTERN, description: "image name" });

/** A firmware key id: the first 16 hex digits of sha256 over the key's SPKI DER (`firmwareKeyId`). */
export const FirmwareKeyId = Type.String({
  pattern: "^[0-9a-f]{16}$",
  description: "first 16 hex of sha256(SPKI DER)",
});

/** What the firmware signing key vouches for. */
export const FirmwareManifest = Type.Object(
  {
    v: Type.Literal(1),
    name: FirmwareName,
    version: SemverString,
    compatible: Type.Array(Type.String({ pattern: FIRMWARE_COMPAT_PATTERN }), { minItems: 1, maxItems: 64 }),
    size: Type.Integer({ minimum: 0, description: "exact image size in bytes" }),
    sha256: Type.String({ pattern: "^[0-9a-f]{64}$", description: "sha256 of the image, lowercase hex" }),
    created: Type.String({ format: "date-time" }),
    minAgentVersion: Type.Optional(SemverString),
  },
  { additionalProperties: false },
);
export type FirmwareManifest = Static<typeof FirmwareManifest>;

/** A manifest with its detached Ed25519 signature over `canonicalManifest(manifest)`. */
export const SignedManifest = Type.Object(
  {
    manifest: FirmwareManifest,
    signature: Type.String({ pattern: "^[A-Za-z0-9+/]+={0,2}$", description: "Ed25519 signature, base64" }),
    keyId: FirmwareKeyId,
  },
  { additionalProperties: false },
);
export type SignedManifest = Static<typeof SignedManifest>;

/**
 * Cloud → device over mTLS (`GET /api/v1/firmware-keys`): every firmware public key the device
 * should trust. `signing` marks the key new images are signed with; the others are keys rotated
 * out but not yet retired, still trusted for the images they signed before the rotation.
 */
export const FirmwareTrustedKeys = Type.Object(
  {
    v: Type.Literal(1),
    keys: Type.Array(
      Type.Object(
        {
          keyId: FirmwareKeyId,
          publicKey: Type.String({ maxLength: 4096, description: "Ed25519 public key, SPKI PEM" }),
          signing: Type.Boolean({ description: "true for the key new images are signed with" }),
        },
        { additionalProperties: false },
      ),
      { maxItems: 32 },
    ),
  },
  { additionalProperties: false },
);
export type FirmwareTrustedKeys = Static<typeof FirmwareTrustedKeys>;

/** Cloud → device on `jobs/notify`: run this image. The device fetches the signed manifest itself. */
export const JobNotify = Type.Object(
  {
    v: Type.Literal(1),
    jobId: Type.String({ pattern: "^[A-Za-z0-9_-]{1,64}$" }),
    firmware: Type.Object({ name: FirmwareName, version: SemverString }, { additionalProperties: false }),
    // The device's type's compat id, as the cloud knows it: the device has no other source for it.
    firmwareCompat: Type.String({ pattern: FIRMWARE_COMPAT_PATTERN }),
    timeoutS: Type.Integer({ minimum: 1, description: "seconds the job has, from when it was created" }),
    // A rollout's auto-rollback: the agent accepts this older version only if it is exactly the
    // one its last successful update replaced (anti-rollback still refuses any other).
    rollback: Type.Optional(Type.Boolean()),
    // An aborted rollout: stop this job if it has not reached INSTALLING; otherwise it runs to its end.
    cancel: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type JobNotify = Static<typeof JobNotify>;

/**
 * The bytes that are signed: JSON with object keys sorted by UTF-16 code unit at every level, no
 * whitespace, absent optional fields omitted, arrays in their given order. Any change to a field
 * changes the text, and two equal manifests always serialize alike whatever their key order.
 */
export function canonicalManifest(manifest: FirmwareManifest): string {
  return canonicalJson(manifest);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The key id carried with a signature: which key signed, so a key rotation is visible. */
export function firmwareKeyId(publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("hex").slice(0, 16);
}

/** True only when `signed.signature` is a valid Ed25519 signature by this key over the canonical manifest. */
export function verifyManifestSignature(signed: SignedManifest, publicKeyPem: string): boolean {
  try {
    const key = createPublicKey(publicKeyPem);
    if (key.asymmetricKeyType !== "ed25519") return false;
    return verify(
      null,
      Buffer.from(canonicalManifest(signed.manifest), "utf8"),
      key,
      Buffer.from(signed.signature, "base64"),
    );
  } catch {
    return false;
  }
}

/** Semver precedence: negative when a < b, 0 when equal (build metadata ignored), positive when a > b. */
export function compareVersions(a: string, b: string): number {
  return semver.compare(a, b);
}

/** A version string that parses as strict semver. */
export function isSemver(value: string): boolean {
  return new RegExp(SEMVER_PATTERN).test(value) && semver.valid(value) !== null;
}
