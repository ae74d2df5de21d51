import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import {
  FieldgateError,
  type FirmwareManifest,
  SchemaValidator,
  SignedManifest,
  verifyManifestSignature,
} from "@fieldgate/shared";
import type { Generated, Kysely, Selectable } from "kysely";
import type { DeviceRow } from "../registry/device-registry.js";
import { type CloudDatabase, isUniqueViolation } from "../storage/cloud-database.js";
import type { FirmwareKeys, TrustedFirmwareKey } from "./firmware-keys.js";
import type { FirmwareImageUser, FirmwareRecord } from "./firmware-record.js";

/** What an upload names; size and sha256 come from the bytes. */
export interface FirmwareUpload {
  name: string;
  version: string;
  compatible: string[];
  minAgentVersion?: string | undefined;
  /** The Content-Length, when sent: checked against the limit before any byte is read. */
  declaredSize?: number | undefined;
  /** A manifest signed offline; its size and sha256 must match the bytes, and it must verify. */
  offlineSigned?: unknown;
}

/** The `firmware_images` table; only this module issues SQL on it. */
export type FirmwareImagesTable = {
  id: Generated<number>;
  org_id: number;
  name: string;
  version: string;
  /** JSON array of the compatibility ids. */
  compatible: string;
  size: number;
  sha256: string;
  min_agent_version: string | null;
  key_id: string;
  created_at: number;
};

type FirmwareTables = {
  firmware_images: FirmwareImagesTable;
};

/** A stored `firmware_images` row. */
export type ImageRow = Selectable<FirmwareImagesTable>;

/** A device type's firmware compatibility id (DeviceTypes implements it: it owns the types). */
export interface FirmwareCompatLookup {
  firmwareCompat(typeId: number): Promise<string | undefined>;
}

/** Told when a stored image no longer matches its manifest, with the device whose download found it. */
export type CorruptImageHandler = (record: FirmwareRecord, device: DeviceRow, problem: string) => void;

/**
 * The firmware store: `<dir>/<org id>/<name>/<version>/image.bin` and `manifest.json` (the signed
 * manifest), indexed by `firmware_images`. Images are immutable; an upload is streamed to a temp
 * directory while hashed and counted, and renamed into place only when complete and signed.
 */
export class FirmwareStore {
  private readonly validator = new SchemaValidator();
  /** Per image id: the file (inode, size, times) whose sha256 was last checked, and that check. */
  private readonly verified = new Map<number, { fingerprint: string; check: Promise<string> }>();
  private readonly db: Kysely<FirmwareTables>;

  constructor(
    database: CloudDatabase,
    private readonly dir: string,
    readonly maxSize: number,
    private readonly keys: FirmwareKeys,
    private readonly types: FirmwareCompatLookup,
    private readonly clock: () => number = Date.now,
    private readonly onCorrupt: CorruptImageHandler = () => undefined,
    /** Who else refers to images (jobs, rollouts): asked before a delete, told during it. */
    private readonly users: readonly FirmwareImageUser[] = [],
  ) {
    this.db = database.kysely.withTables<FirmwareTables>();
  }

  /** The firmware keys devices should trust (the signing key and those rotated out, not retired). */
  trustedKeys(): TrustedFirmwareKey[] {
    return this.keys.trusted();
  }

  async add(orgId: number, upload: FirmwareUpload, body: Readable): Promise<FirmwareRecord> {
    // Fail before reading the body where the answer is already known.
    if (upload.declaredSize !== undefined && upload.declaredSize > this.maxSize) throw this.tooLarge();
    if (!this.keys.publicKeyPem()) throw new FieldgateError("FIRMWARE_SIGNING_KEY_MISSING");
    if (upload.offlineSigned === undefined && !this.keys.canSign()) {
      throw new FieldgateError(
        "FIRMWARE_SIGNING_KEY_MISSING",
        "the cloud holds only the public firmware key (offline signing); upload with --signature",
      );
    }
    const offline =
      upload.offlineSigned === undefined
        ? undefined
        : this.validator.parse(SignedManifest, upload.offlineSigned, "signature");
    if (offline) checkSameImage(offline.manifest, upload);
    if (await this.find(orgId, upload.name, upload.version)) throw exists(upload);

    const incoming = path.join(this.dir, ".incoming", `${Date.now()}-${randomBytes(6).toString("hex")}`);
    fs.mkdirSync(incoming, { recursive: true, mode: 0o700 });
    try {
      const { size, sha256 } = await this.receive(body, path.join(incoming, "image.bin"));
      const manifest: FirmwareManifest = offline?.manifest ?? {
        v: 1,
        name: upload.name,
        version: upload.version,
        compatible: upload.compatible,
        size,
        sha256,
        created: new Date(this.clock()).toISOString(),
        ...(upload.minAgentVersion !== undefined && { minAgentVersion: upload.minAgentVersion }),
      };
      let signed: SignedManifest;
      if (offline) {
        if (offline.manifest.size !== size || offline.manifest.sha256 !== sha256) {
          throw new FieldgateError(
            "FIRMWARE_HASH_MISMATCH",
            `the signed manifest says ${offline.manifest.size} bytes with sha256 ${offline.manifest.sha256}; the upload is ${size} bytes with ${sha256}`,
            "signature",
          );
        }
        if (!verifyManifestSignature(offline, this.keys.publicKeyPem() ?? "")) {
          throw new FieldgateError(
            "FIRMWARE_SIGNATURE_INVALID",
            "the offline signature does not verify with this cloud's firmware public key",
            "signature",
          );
        }
        signed = offline;
      } else signed = this.keys.sign(manifest);
      fs.writeFileSync(path.join(incoming, "manifest.json"), `${JSON.stringify(signed, null, 2)}\n`, { mode: 0o600 });

      const final = this.imageDir(orgId, upload.name, upload.version);
      fs.mkdirSync(path.dirname(final), { recursive: true, mode: 0o700 });
      const row = await this.db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto("firmware_images")
          .values({
            org_id: orgId,
            name: manifest.name,
            version: manifest.version,
            compatible: JSON.stringify(manifest.compatible),
            size,
            sha256,
            min_agent_version: manifest.minAgentVersion ?? null,
            key_id: signed.keyId,
            created_at: Date.parse(manifest.created),
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        // Inside the transaction: if the rename fails, the row goes too.
        if (fs.existsSync(final)) throw exists(upload);
        fs.renameSync(incoming, final);
        return inserted;
      });
      return imageRecord(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw exists(upload);
      throw err;
    } finally {
      fs.rmSync(incoming, { recursive: true, force: true });
    }
  }

  async list(orgId: number): Promise<FirmwareRecord[]> {
    const rows = await this.db
      .selectFrom("firmware_images")
      .selectAll()
      .where("org_id", "=", orgId)
      .orderBy("name")
      .orderBy("created_at")
      .orderBy("id")
      .execute();
    return rows.map((r) => imageRecord(r));
  }

  /** The image in the caller's organization; another organization's answers as a missing one does. */
  async get(orgId: number, name: string, version: string): Promise<FirmwareRecord> {
    const row = await this.find(orgId, name, version);
    if (!row) throw new FieldgateError("FIRMWARE_NOT_FOUND", `no image ${name}@${version}`);
    return row;
  }

  /** For a device: its organization's image, and only if its device type's compat id is listed. */
  async forDevice(device: DeviceRow, name: string, version: string): Promise<FirmwareRecord> {
    const row = await this.find(device.org_id, name, version);
    const compat = device.type_id === null ? undefined : await this.types.firmwareCompat(device.type_id);
    if (!row || compat === undefined || !row.compatible.includes(compat)) {
      throw new FieldgateError("FIRMWARE_NOT_FOUND", `no image ${name}@${version} for this device`);
    }
    return row;
  }

  signed(record: FirmwareRecord): SignedManifest {
    const text = fs.readFileSync(path.join(this.imageDir(record.orgId, record.name, record.version), "manifest.json"));
    return JSON.parse(text.toString("utf8")) as SignedManifest;
  }

  imagePath(record: FirmwareRecord): string {
    return path.join(this.imageDir(record.orgId, record.name, record.version), "image.bin");
  }

  /**
   * The image file, checked against its manifest before a device is served it: its size every
   * time, its sha256 once per version of the file (inode, size, mtime, ctime: an edit in place
   * changes ctime). A mismatch is reported (`onCorrupt`) and thrown as FIRMWARE_IMAGE_CORRUPT.
   */
  async checkedImage(record: FirmwareRecord, device: DeviceRow): Promise<string> {
    const file = this.imagePath(record);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(file);
    } catch (err) {
      throw this.corrupt(record, device, `the stored file is unreadable (${(err as NodeJS.ErrnoException).code})`);
    }
    if (stat.size !== record.size) {
      throw this.corrupt(record, device, `the stored file has ${stat.size} bytes; its manifest says ${record.size}`);
    }
    const fingerprint = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
    let entry = this.verified.get(record.id);
    if (entry?.fingerprint !== fingerprint) {
      // One hash per file version, shared by the devices that ask while it runs (a rollout's fan-out).
      entry = { fingerprint, check: sha256Of(file) };
      this.verified.set(record.id, entry);
    }
    const sha256 = await entry.check.catch((err: NodeJS.ErrnoException) => `unreadable (${err.code})`);
    if (sha256 !== record.sha256) {
      this.verified.delete(record.id);
      throw this.corrupt(record, device, `the stored file's sha256 is ${sha256}; its manifest says ${record.sha256}`);
    }
    return file;
  }

  /** Reports a stored image that differs from its manifest; the error to answer the device with. */
  corrupt(record: FirmwareRecord, device: DeviceRow, problem: string): FieldgateError {
    this.onCorrupt(record, device, problem);
    return new FieldgateError(
      "FIRMWARE_IMAGE_CORRUPT",
      `${record.name}@${record.version}: ${problem}; restore the file or upload the image again under a new version`,
    );
  }

  /** True while one of the image's users needs it (an active rollout, a job a device has not finished). */
  async inUse(record: FirmwareRecord): Promise<boolean> {
    for (const user of this.users) if (await user.usesImage(record.id)) return true;
    return false;
  }

  async delete(orgId: number, name: string, version: string): Promise<void> {
    const record = await this.get(orgId, name, version);
    if (await this.inUse(record)) {
      throw new FieldgateError(
        "FIRMWARE_IN_USE",
        `an active rollout or an unfinished job uses ${name}@${version}; abort or finish it first`,
      );
    }
    const dir = this.imageDir(orgId, name, version);
    const trash = path.join(this.dir, ".incoming", `deleted-${randomBytes(6).toString("hex")}`);
    await this.db.transaction().execute(async (trx) => {
      // The users' finished rows first (a rollout refers to its image), in this transaction.
      for (const user of this.users) await user.releaseImage?.(record.id, trx);
      await trx.deleteFrom("firmware_images").where("id", "=", record.id).execute();
      // Renamed away inside the transaction, so a half-deleted image never stays listed.
      fs.mkdirSync(path.dirname(trash), { recursive: true, mode: 0o700 });
      if (fs.existsSync(dir)) fs.renameSync(dir, trash);
    });
    fs.rmSync(trash, { recursive: true, force: true });
  }

  /** The image, or undefined when there is none (see `get` for the throwing form). */
  async find(orgId: number, name: string, version: string): Promise<FirmwareRecord | undefined> {
    const row = await this.db
      .selectFrom("firmware_images")
      .selectAll()
      .where("org_id", "=", orgId)
      .where("name", "=", name)
      .where("version", "=", version)
      .executeTakeFirst();
    return row && imageRecord(row);
  }

  async byId(id: number): Promise<FirmwareRecord | undefined> {
    const row = await this.db.selectFrom("firmware_images").selectAll().where("id", "=", id).executeTakeFirst();
    return row && imageRecord(row);
  }

  private imageDir(orgId: number, name: string, version: string): string {
    return path.join(this.dir, String(orgId), name, version);
  }

  /**
   * Streams the body to `file`, hashing and counting; stops at the limit. Events rather than
   * for-await: leaving a for-await early destroys the request, and with it the socket the answer needs.
   */
  private async receive(body: Readable, file: string): Promise<{ size: number; sha256: string }> {
    const hash = createHash("sha256");
    const out = fs.createWriteStream(file, { mode: 0o600 });
    let size = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        const fail = (err: Error) => {
          body.off("data", onData);
          body.resume(); // discard the rest so that the client still reads the answer
          reject(err);
        };
        const onData = (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.maxSize) return fail(this.tooLarge());
          hash.update(chunk);
          if (!out.write(chunk)) {
            body.pause();
            out.once("drain", () => body.resume());
          }
        };
        body.on("data", onData);
        body.once("error", fail);
        body.once("aborted", () => fail(new FieldgateError("VALIDATION_FAILED", "the upload was cut off", "body")));
        out.once("error", fail);
        body.once("end", () => out.end(() => resolve()));
      });
      const fd = fs.openSync(file, "r");
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    } catch (err) {
      out.destroy();
      throw err;
    }
    return { size, sha256: hash.digest("hex") };
  }

  private tooLarge(): FieldgateError {
    return new FieldgateError(
      "FIRMWARE_TOO_LARGE",
      `the image is larger than the limit of ${this.maxSize} bytes (--firmware-max-size)`,
      "body",
    );
  }
}

/** An index row as the API shows it. */
export function imageRecord(row: ImageRow): FirmwareRecord {
  return {
    id: row.id,
    orgId: row.org_id,
    name: row.name,
    version: row.version,
    compatible: JSON.parse(row.compatible) as string[],
    size: row.size,
    sha256: row.sha256,
    minAgentVersion: row.min_agent_version ?? undefined,
    keyId: row.key_id,
    createdAt: row.created_at,
  };
}

function sha256Of(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    fs.createReadStream(file)
      .on("data", (chunk) => hash.update(chunk))
      .once("error", reject)
      .once("end", () => resolve(hash.digest("hex")));
  });
}

function exists(upload: { name: string; version: string }): FieldgateError {
  return new FieldgateError("FIRMWARE_EXISTS", `${upload.name}@${upload.version} is already in the store`, "version");
}

/** An offline-signed manifest must describe the image the query names. */
function checkSameImage(manifest: FirmwareManifest, upload: FirmwareUpload): void {
  const same =
    manifest.name === upload.name &&
    manifest.version === upload.version &&
    manifest.compatible.join(",") === upload.compatible.join(",") &&
    manifest.minAgentVersion === upload.minAgentVersion;
  if (!same) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      "the signed manifest names another image (name, version, compatible or minAgentVersion differ)",
      "signature",
    );
  }
}
