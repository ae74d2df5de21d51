import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FieldgateError, FirmwareTrustedKeys, firmwareKeyId, SchemaValidator } from "@fieldgate/shared";
import { writeFileAtomic } from "../identity/atomic-file.js";

const validator = new SchemaValidator();

/**
 * The firmware keys this device trusts, as the cloud last sent them over the device's own mTLS
 * session (`GET /api/v1/firmware-keys`), kept in `<dataDir>/firmware-keys.json` so a job resumed
 * offline verifies against the same keys. Nothing else writes it: not a job, not a manifest (whose
 * `keyId` only names a key), not MQTT.
 */
export class FirmwareKeyStore {
  readonly file: string;

  constructor(dataDir: string) {
    this.file = join(dataDir, "firmware-keys.json");
  }

  /** The stored keys, or undefined when the cloud never sent any (or the file does not check out). */
  load(): FirmwareTrustedKeys | undefined {
    try {
      return checkedTrustedKeys(JSON.parse(readFileSync(this.file, "utf8")));
    } catch {
      return undefined;
    }
  }

  /**
   * Replaces the stored keys with the cloud's answer, after checking every key: Ed25519, and its id
   * is its own. An empty answer is not stored: the cloud never retires its signing key, so no key at
   * all means a cloud that lost or has not yet made one, and the keys known so far stay trusted.
   * Returns whether the stored keys changed.
   */
  replace(answer: unknown): boolean {
    const keys = checkedTrustedKeys(answer);
    if (keys.keys.length === 0) return false;
    const text = `${JSON.stringify(keys, null, 2)}\n`;
    if (safeRead(this.file) === text) return false;
    writeFileAtomic(this.file, text, 0o600);
    return true;
  }
}

/** The answer, validated: the schema, then each key parses as Ed25519 and matches its key id. */
export function checkedTrustedKeys(answer: unknown): FirmwareTrustedKeys {
  const keys = validator.parse(FirmwareTrustedKeys, answer, "firmware-keys");
  for (const key of keys.keys) {
    let type: string | undefined;
    try {
      type = createPublicKey(key.publicKey).asymmetricKeyType;
    } catch {
      type = undefined;
    }
    if (type !== "ed25519" || key.publicKey.includes("PRIVATE")) {
      throw new FieldgateError("VALIDATION_FAILED", `firmware key ${key.keyId} is not an Ed25519 public key`, "keys");
    }
    if (firmwareKeyId(key.publicKey) !== key.keyId) {
      throw new FieldgateError("VALIDATION_FAILED", `firmware key ${key.keyId} does not have that key id`, "keys");
    }
  }
  return keys;
}

function safeRead(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}
