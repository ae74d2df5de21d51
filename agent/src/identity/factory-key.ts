import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { type FactoryProof, FieldgateError, factoryProofMessage } from "@fieldgate/shared";
import { writeFileAtomic } from "./atomic-file.js";

/**
 * The factory identity key (IEEE 802.1AR IDevID style): a birth key that survives factory reset and
 * proves the device's right to self-enroll. P-256 or Ed25519, PEM.
 */
export class FactoryKey {
  private constructor(private readonly key: KeyObject) {}

  /** Loads the PEM private key; `CONFIG_INVALID` on `enrollment.factoryKeyFile` if unusable. */
  static load(file: string): FactoryKey {
    let key: KeyObject;
    try {
      key = createPrivateKey(readFileSync(file));
    } catch (err) {
      throw new FieldgateError(
        "CONFIG_INVALID",
        `cannot load the factory key ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        "enrollment.factoryKeyFile",
      );
    }
    const type = key.asymmetricKeyType;
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (!(type === "ed25519" || (type === "ec" && curve === "prime256v1"))) {
      throw new FieldgateError(
        "CONFIG_INVALID",
        `the factory key ${file} must be P-256 or Ed25519, got ${type}${curve ? ` ${curve}` : ""}`,
        "enrollment.factoryKeyFile",
      );
    }
    return new FactoryKey(key);
  }

  /** The SPKI public key PEM the operator registers with the device. */
  publicKeyPem(): string {
    return createPublicKey(this.key).export({ type: "spki", format: "pem" }).toString();
  }

  /** Signs the enrollment proof: uuid, CSR hash, timestamp and a fresh nonce. */
  prove(uuid: string, csrSha256: string, now: number = Date.now()): FactoryProof {
    const nonce = randomBytes(32).toString("hex");
    const message = Buffer.from(factoryProofMessage(uuid, csrSha256, now, nonce));
    // Ed25519 signs the message itself (no pre-hash); ECDSA uses SHA-256, DER-encoded signature.
    const signature = sign(this.key.asymmetricKeyType === "ed25519" ? null : "sha256", message, this.key);
    return { timestamp: now, nonce, signature: signature.toString("base64") };
  }
}

/** Creates a new P-256 factory key at `out` (mode 0600); refuses to overwrite. Returns the public key PEM. */
export function generateFactoryKey(out: string): string {
  if (existsSync(out)) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `${out} already exists; refusing to overwrite a factory key`,
      "--out",
    );
  }
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  writeFileAtomic(out, privateKey.export({ type: "pkcs8", format: "pem" }).toString(), 0o600);
  return FactoryKey.load(out).publicKeyPem();
}
