import { createHash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import {
  compareVersions,
  FieldgateError,
  type FirmwareTrustedKeys,
  firmwareKeyId,
  type SignedManifest,
  verifyManifestSignature,
} from "@fieldgate/shared";

/** What the agent checks an image against before anything is installed. */
export interface VerifyInput {
  signed: SignedManifest;
  /** The downloaded image. */
  imagePath: string;
  /** Trusted firmware public keys (PEM): see `trustedFirmwareKeys`. */
  publicKeys: readonly string[];
  /** This device type's firmware compatibility id. */
  deviceFirmwareCompat: string;
  /** The installed firmware version, or undefined when none was ever recorded. */
  installedVersion: string | undefined;
  /** For a rollback job only: the version the last install replaced, the one it may return to. */
  rollbackTo?: string | undefined;
  /** True for a rollout's auto-rollback job (`JobNotify.rollback`). */
  rollback?: boolean;
  /** This agent's own version, for `minAgentVersion`. */
  agentVersion: string;
}

/**
 * Every check docs/architecture.md ("Firmware updates") names before an install, cheapest first:
 * signature, compatibility, anti-rollback, agent version, then exact size and sha256 of the file. Throws a coded error at
 * the first failure; returns only when the image may be installed.
 */
export async function verifyBeforeInstall(input: VerifyInput): Promise<void> {
  const { signed, imagePath } = input;
  const m = signed.manifest;
  assertSignedByTrustedKey(signed, input.publicKeys);
  if (!m.compatible.includes(input.deviceFirmwareCompat)) {
    throw new FieldgateError(
      "FIRMWARE_INCOMPATIBLE",
      `${m.name}@${m.version} is for ${m.compatible.join(", ")}, not ${input.deviceFirmwareCompat}`,
    );
  }
  assertVersionAllowed(m.version, input);
  if (m.minAgentVersion !== undefined && compareVersions(input.agentVersion, m.minAgentVersion) < 0) {
    throw new FieldgateError(
      "AGENT_TOO_OLD",
      `the image needs agent ${m.minAgentVersion}; this is ${input.agentVersion}`,
    );
  }
  const size = statSync(imagePath).size;
  if (size !== m.size) {
    throw new FieldgateError("FIRMWARE_SIZE_MISMATCH", `the image has ${size} bytes; the manifest says ${m.size}`);
  }
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(imagePath)) hash.update(chunk as Buffer);
  const sha256 = hash.digest("hex");
  if (sha256 !== m.sha256) {
    throw new FieldgateError(
      "FIRMWARE_HASH_MISMATCH",
      `the image's sha256 is ${sha256}; the manifest says ${m.sha256}`,
    );
  }
}

/**
 * The signature must verify with one of the trusted keys. Each refusal says which case it is and
 * what fixes it: no key at all, a key the device does not trust, or a signature that does not verify.
 */
export function assertSignedByTrustedKey(signed: SignedManifest, publicKeys: readonly string[]): void {
  if (publicKeys.some((key) => verifyManifestSignature(signed, key))) return;
  const image = `${signed.manifest.name}@${signed.manifest.version}`;
  const ids = publicKeys.map(keyIdOf);
  if (ids.length === 0) {
    throw new FieldgateError(
      "FIRMWARE_SIGNATURE_INVALID",
      `this device trusts no firmware signing key, so it cannot verify ${image}: the cloud had none when the device last asked. ` +
        "Run `fieldgate-cloud firmware keygen` on the cloud host, then start the update again",
    );
  }
  if (!ids.includes(signed.keyId)) {
    throw new FieldgateError(
      "FIRMWARE_SIGNATURE_INVALID",
      `${image} was signed by key ${signed.keyId}, which this device does not trust (it trusts ${ids.join(", ")}). ` +
        "If that key was retired, upload the image again so the current key signs it; if it is the cloud's current key, the device could not fetch the trusted keys: check its connection to the cloud",
    );
  }
  throw new FieldgateError(
    "FIRMWARE_SIGNATURE_INVALID",
    `the signature of ${image} does not verify with trusted key ${signed.keyId}: the manifest was altered or corrupted. Upload the image again`,
  );
}

function keyIdOf(publicKeyPem: string): string {
  try {
    return firmwareKeyId(publicKeyPem);
  } catch {
    return "(unreadable key)";
  }
}

/**
 * Anti-rollback: an image must be newer than the installed one. The one exception is a rollout's
 * auto-rollback, which may return to exactly the version the last install replaced, no other.
 */
export function assertVersionAllowed(
  version: string,
  input: { installedVersion: string | undefined; rollback?: boolean; rollbackTo?: string | undefined },
): void {
  const installed = input.installedVersion;
  if (input.rollback) {
    if (input.rollbackTo === undefined || version !== input.rollbackTo || installed === undefined) {
      throw new FieldgateError(
        "FIRMWARE_NOT_NEWER",
        input.rollbackTo === undefined
          ? `a rollback to ${version} is refused: no earlier version is recorded (anti-rollback)`
          : `a rollback may only return to ${input.rollbackTo}, the version the last update replaced, not ${version}`,
      );
    }
    return;
  }
  if (installed !== undefined && compareVersions(version, installed) <= 0) {
    throw new FieldgateError(
      "FIRMWARE_NOT_NEWER",
      `${version} is not newer than the installed ${installed} (anti-rollback)`,
    );
  }
}

/**
 * The firmware keys the agent trusts: those the cloud last sent over mTLS (`FirmwareKeyStore`) or,
 * before it sent any, the one learned at enrollment; plus the one named by `updates.publicKeyFile`.
 * The cloud's list supersedes the enrollment key, so a retired key stops being trusted. An
 * unreadable configured file is an error, not a silent empty list.
 */
export function trustedFirmwareKeys(
  identity: { firmwarePublicKey?: string } | undefined,
  config: { publicKeyFile?: string },
  read: (file: string) => string,
  fromCloud?: FirmwareTrustedKeys,
): string[] {
  const keys: string[] = [];
  if (fromCloud) keys.push(...fromCloud.keys.map((k) => k.publicKey));
  else if (identity?.firmwarePublicKey) keys.push(identity.firmwarePublicKey);
  if (config.publicKeyFile) {
    try {
      keys.push(read(config.publicKeyFile));
    } catch (err) {
      throw new FieldgateError(
        "CONFIG_INVALID",
        `updates.publicKeyFile ${config.publicKeyFile}: ${(err as Error).message}`,
        "updates.publicKeyFile",
      );
    }
  }
  return keys;
}
