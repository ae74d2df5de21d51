import { FieldgateError } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import type { FirmwareRecord } from "./firmware-record.js";
import { type ImageRow, imageRecord } from "./firmware-store.js";

/**
 * Synchronous image reads on the embedded database, for jobs and rollouts while issue #14 converts
 * them; they move to the async FirmwareStore then, and this goes.
 */
export class EmbeddedFirmwareLookup {
  constructor(private readonly db: Database.Database) {}

  get(orgId: number, name: string, version: string): FirmwareRecord {
    const row = this.find(orgId, name, version);
    if (!row) throw new FieldgateError("FIRMWARE_NOT_FOUND", `no image ${name}@${version}`);
    return row;
  }

  find(orgId: number, name: string, version: string): FirmwareRecord | undefined {
    const row = this.db
      .prepare("SELECT * FROM firmware_images WHERE org_id = ? AND name = ? AND version = ?")
      .get(orgId, name, version) as ImageRow | undefined;
    return row && imageRecord(row);
  }

  byId(id: number): FirmwareRecord | undefined {
    const row = this.db.prepare("SELECT * FROM firmware_images WHERE id = ?").get(id) as ImageRow | undefined;
    return row && imageRecord(row);
  }
}
