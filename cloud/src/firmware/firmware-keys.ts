import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import {
  canonicalManifest,
  FieldgateError,
  type FirmwareManifest,
  firmwareKeyId,
  type SignedManifest,
} from "@fieldgate/shared";
import { writePublicFile, writeSecretFile } from "../pki/secret-files.js";

/** Where a data directory keeps the firmware signing key; separate from `pki/`, where the CA key lives. */
export const firmwareKeyFiles = (dataDir: string) => ({
  privateKey: path.join(dataDir, "firmware-signing.key"),
  publicKey: path.join(dataDir, "firmware-signing.pub"),
});

/** The public key file written beside a private key file. */
export const publicKeyFileFor = (privateKeyFile: string): string => privateKeyFile.replace(/(\.key)?$/, ".pub");

/**
 * Creates an Ed25519 firmware signing key (0600) and its public key beside it. Refuses to overwrite:
 * replacing the key silently would make every device refuse new images signed with it.
 */
export function generateFirmwareKey(privateKeyFile: string): { publicKeyPem: string; publicKeyFile: string } {
  if (fs.existsSync(privateKeyFile)) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `${privateKeyFile} exists; devices trust it, so it is not replaced. Move it away first to rotate deliberately`,
      "key-file",
    );
  }
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();
  writeSecretFile(privateKeyFile, privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  const publicKeyFile = publicKeyFileFor(privateKeyFile);
  writePublicFile(publicKeyFile, publicKeyPem);
  return { publicKeyPem, publicKeyFile };
}

/** Signs the canonical manifest with an Ed25519 private key (PEM). */
export function signManifest(manifest: FirmwareManifest, privateKeyPem: string): SignedManifest {
  const key = createPrivateKey(privateKeyPem);
  if (key.asymmetricKeyType !== "ed25519") {
    throw new FieldgateError("VALIDATION_FAILED", "the firmware signing key must be Ed25519", "key");
  }
  const publicKeyPem = createPublicKey(key).export({ type: "spki", format: "pem" }).toString();
  return {
    manifest,
    signature: sign(null, Buffer.from(canonicalManifest(manifest), "utf8"), key).toString("base64"),
    keyId: firmwareKeyId(publicKeyPem),
  };
}

/**
 * The cloud's firmware key, read from disk when first needed (so `firmware keygen` works without a
 * restart). With only a public key present the cloud is in offline-signing mode: it cannot sign, but
 * it verifies signatures made elsewhere and hands the public key to enrolling devices.
 */
export class FirmwareKeys {
  private privateKey: KeyObject | undefined;
  private publicPem: string | undefined;

  constructor(
    /** The private key file; may be absent (offline mode) or hold a public key PEM. */
    private readonly privateKeyFile: string,
    /** The public key file used when no private key is present. */
    private readonly publicKeyFile: string = publicKeyFileFor(privateKeyFile),
  ) {}

  /** The public key PEM, or undefined while no key exists. */
  publicKeyPem(): string | undefined {
    this.load();
    return this.publicPem;
  }

  canSign(): boolean {
    this.load();
    return this.privateKey !== undefined;
  }

  sign(manifest: FirmwareManifest): SignedManifest {
    this.load();
    if (!this.privateKey) throw new FieldgateError("FIRMWARE_SIGNING_KEY_MISSING");
    return signManifest(manifest, this.privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  }

  private load(): void {
    if (this.publicPem) return;
    const text = readIfExists(this.privateKeyFile);
    if (text?.includes("PRIVATE KEY")) {
      const key = createPrivateKey(text);
      if (key.asymmetricKeyType !== "ed25519") {
        throw new FieldgateError("CONFIG_INVALID", `${this.privateKeyFile} is not an Ed25519 key`, "signing-key-file");
      }
      this.privateKey = key;
      this.publicPem = createPublicKey(key).export({ type: "spki", format: "pem" }).toString();
      return;
    }
    const pub = text ?? readIfExists(this.publicKeyFile);
    if (pub) this.publicPem = createPublicKey(pub).export({ type: "spki", format: "pem" }).toString();
  }
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}
