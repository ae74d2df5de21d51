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
import { publicKeyOf, readPemFile, readPrivateKeyFile } from "../pki/key-files.js";
import { writePublicFile, writeSecretFile } from "../pki/secret-files.js";

/** Where a data directory keeps the firmware signing key; separate from `pki/`, where the CA key lives. */
export const firmwareKeyFiles = (dataDir: string) => ({
  privateKey: path.join(dataDir, "firmware-signing.key"),
  publicKey: path.join(dataDir, "firmware-signing.pub"),
});

/** The public key file written beside a private key file. */
export const publicKeyFileFor = (privateKeyFile: string): string => privateKeyFile.replace(/(\.key)?$/, ".pub");

/**
 * Where keys rotated out live until they are retired: `<key file without .key/.pub>.previous/`,
 * one `<keyId>.pub` each. Devices keep trusting them for the images they signed.
 */
export const previousKeysDirFor = (keyFile: string): string => `${keyFile.replace(/\.(key|pub)$/, "")}.previous`;

/** One key a device should trust; `signing` is the one new images are signed with. */
export interface TrustedFirmwareKey {
  keyId: string;
  publicKey: string;
  signing: boolean;
}

const KEY_FIX = {
  field: "firmware-signing-key",
  fix: "Point --firmware-signing-key at the Ed25519 key `fieldgate-cloud firmware keygen` wrote (or at its .pub for offline signing)",
};

/**
 * Creates an Ed25519 firmware signing key (0600) and its public key beside it. Refuses to overwrite:
 * replacing the key silently would make every device refuse new images signed with it (`rotate` is
 * the deliberate way).
 */
export function generateFirmwareKey(privateKeyFile: string): {
  publicKeyPem: string;
  publicKeyFile: string;
  keyId: string;
} {
  const refuse = () =>
    new FieldgateError(
      "VALIDATION_FAILED",
      `${privateKeyFile} exists; devices trust it, so it is not replaced. Use \`fieldgate-cloud firmware rotate\` to replace it deliberately`,
      "key-file",
    );
  if (fs.existsSync(privateKeyFile)) throw refuse();
  return writeNewKey(privateKeyFile, refuse);
}

/**
 * Rotates the signing key: the current public key moves to the previous keys (still trusted for
 * what it signed), then a new key takes its place. The old private key is deleted: after a
 * rotation, nothing on this host can sign with it. With `offlinePublicKeyPem`, the new key was made
 * offline and only its public key is installed (offline-signing mode).
 */
export function rotateFirmwareKey(
  keyFile: string,
  offlinePublicKeyPem?: string,
): { previousKeyId: string; keyId: string; publicKeyPem: string; publicKeyFile: string } {
  const current = new FirmwareKeys(keyFile).trusted().find((k) => k.signing);
  if (!current) {
    throw new FieldgateError(
      "FIRMWARE_SIGNING_KEY_MISSING",
      `there is no key at ${keyFile} to rotate; create the first one with \`fieldgate-cloud firmware keygen\``,
      "key-file",
    );
  }
  const previousDir = previousKeysDirFor(keyFile);
  // Written first: whatever moment a running cloud reads the files, the old key stays trusted.
  writePublicFile(path.join(previousDir, `${current.keyId}.pub`), current.publicKey);
  if (offlinePublicKeyPem !== undefined) {
    const key = publicKeyOf(offlinePublicKeyPem);
    if (key?.asymmetricKeyType !== "ed25519" || offlinePublicKeyPem.includes("PRIVATE KEY")) {
      throw new FieldgateError("VALIDATION_FAILED", "--public-key must hold an Ed25519 public key (PEM)", "public-key");
    }
    const publicKeyPem = key.export({ type: "spki", format: "pem" }).toString();
    const publicKeyFile = keyFile.endsWith(".pub") ? keyFile : publicKeyFileFor(keyFile);
    writePublicFile(publicKeyFile, publicKeyPem);
    if (publicKeyFile !== keyFile) fs.rmSync(keyFile, { force: true });
    return { previousKeyId: current.keyId, keyId: firmwareKeyId(publicKeyPem), publicKeyPem, publicKeyFile };
  }
  if (keyFile.endsWith(".pub")) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `${keyFile} is a public key (offline signing): make the new key offline and pass its public key with --public-key`,
      "public-key",
    );
  }
  return { previousKeyId: current.keyId, ...writeNewKey(keyFile) };
}

/**
 * Retires a rotated-out key: devices stop trusting it at their next update, so images it signed no
 * longer install. The signing key cannot be retired; rotate first.
 */
export function retireFirmwareKey(keyFile: string, keyId: string): TrustedFirmwareKey[] {
  const keys = new FirmwareKeys(keyFile);
  const trusted = keys.trusted();
  const key = trusted.find((k) => k.keyId === keyId);
  if (!key || key.signing) {
    const previous = trusted.filter((k) => !k.signing).map((k) => k.keyId);
    throw new FieldgateError(
      "VALIDATION_FAILED",
      key
        ? `${keyId} is the current signing key; run \`fieldgate-cloud firmware rotate\` first, then retire it`
        : `no rotated-out key ${keyId}; the keys that can be retired: ${previous.join(", ") || "none"}`,
      "key-id",
    );
  }
  for (const file of keys.previousKeyFiles()) {
    if (publicKeyOf(fs.readFileSync(file, "utf8")) && firmwareKeyId(fs.readFileSync(file, "utf8")) === keyId) {
      fs.rmSync(file);
    }
  }
  return keys.trusted();
}

/**
 * Makes a key pair and writes the private key (0600), then its .pub. With `refuseExisting` the
 * private key is linked into place, never renamed: a link fails if the file appeared meanwhile (a
 * second keygen), so an existing key is never replaced. A running cloud derives the public key
 * from the private one, so the moment between the two writes is harmless.
 */
function writeNewKey(
  privateKeyFile: string,
  refuseExisting?: () => Error,
): { publicKeyPem: string; publicKeyFile: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const privatePem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  if (refuseExisting) {
    fs.mkdirSync(path.dirname(privateKeyFile), { recursive: true, mode: 0o700 });
    const tmp = `${privateKeyFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, privatePem, { mode: 0o600 });
    try {
      fs.chmodSync(tmp, 0o600);
      fs.linkSync(tmp, privateKeyFile);
    } catch (err) {
      throw (err as NodeJS.ErrnoException).code === "EEXIST" ? refuseExisting() : err;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  } else {
    writeSecretFile(privateKeyFile, privatePem);
  }
  const publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();
  const publicKeyFile = publicKeyFileFor(privateKeyFile);
  writePublicFile(publicKeyFile, publicKeyPem);
  return { publicKeyPem, publicKeyFile, keyId: firmwareKeyId(publicKeyPem) };
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
 * The cloud's firmware keys, read from disk when needed and read again whenever a key file changes
 * (so `firmware keygen`, `rotate` and `retire` take effect without a restart). With only a public
 * key present the cloud is in offline-signing mode: it cannot sign, but it verifies signatures made
 * elsewhere and hands the public key to devices.
 */
export class FirmwareKeys {
  private privateKey: KeyObject | undefined;
  private publicPem: string | undefined;
  /** The identity (inode, size, mtime) of the key files last read; a change means read again. */
  private loadedStamp: string | undefined;

  constructor(
    /** The private key file; may be absent (offline mode) or hold a public key PEM. */
    private readonly privateKeyFile: string,
    /** The public key file used when no private key is present. */
    private readonly publicKeyFile: string = publicKeyFileFor(privateKeyFile),
    /** Keys rotated out and not yet retired. */
    private readonly previousDir: string = previousKeysDirFor(privateKeyFile),
  ) {}

  /** The current public key PEM, or undefined while no key exists. */
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

  /** Every key devices should trust: the signing key first, then the rotated-out ones, by key id. */
  trusted(): TrustedFirmwareKey[] {
    const current = this.publicKeyPem();
    const keys: TrustedFirmwareKey[] = current
      ? [{ keyId: firmwareKeyId(current), publicKey: current, signing: true }]
      : [];
    for (const file of this.previousKeyFiles()) {
      const key = publicKeyOf(readPemFile(file, KEY_FIX));
      if (key?.asymmetricKeyType !== "ed25519") {
        throw new FieldgateError(
          "CONFIG_INVALID",
          `${file} is not an Ed25519 public key. Remove it, or put back the .pub of the rotated-out key`,
          KEY_FIX.field,
        );
      }
      const publicKey = key.export({ type: "spki", format: "pem" }).toString();
      const keyId = firmwareKeyId(publicKey);
      if (!keys.some((k) => k.keyId === keyId)) keys.push({ keyId, publicKey, signing: false });
    }
    return keys;
  }

  /** The `.pub` files of the rotated-out keys. */
  previousKeyFiles(): string[] {
    return listDir(this.previousDir)
      .filter((name) => name.endsWith(".pub"))
      .sort()
      .map((name) => path.join(this.previousDir, name));
  }

  private load(): void {
    const stamp = [this.privateKeyFile, this.publicKeyFile].map(fileStamp).join("|");
    if (stamp === this.loadedStamp) return;
    this.privateKey = undefined;
    this.publicPem = undefined;
    const file = fs.existsSync(this.privateKeyFile)
      ? this.privateKeyFile
      : fs.existsSync(this.publicKeyFile)
        ? this.publicKeyFile
        : undefined;
    if (!file && fs.statSync(path.dirname(this.privateKeyFile), { throwIfNoEntry: false })?.isDirectory() === false) {
      // No key yet is fine, but `firmware keygen` could never write one under a file.
      throw new FieldgateError(
        "CONFIG_INVALID",
        `${this.privateKeyFile} is under a file, not a directory. ${KEY_FIX.fix}`,
        KEY_FIX.field,
      );
    }
    if (file) {
      const text = readPemFile(file, KEY_FIX);
      const key = text.includes("PRIVATE KEY") ? readPrivateKeyFile(file, KEY_FIX) : publicKeyOf(text);
      if (key?.asymmetricKeyType !== "ed25519") {
        throw new FieldgateError("CONFIG_INVALID", `${file} is not an Ed25519 key. ${KEY_FIX.fix}`, KEY_FIX.field);
      }
      if (key.type === "private") this.privateKey = key;
      const publicKey = key.type === "private" ? createPublicKey(key) : key;
      this.publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();
    }
    this.loadedStamp = stamp;
  }
}

function fileStamp(file: string): string {
  try {
    const st = fs.statSync(file);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return "-";
  }
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
