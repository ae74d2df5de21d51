import type { Executor } from "../storage/cloud-database.js";

/** An image's index row, as the API shows it. */
export interface FirmwareRecord {
  id: number;
  orgId: number;
  name: string;
  version: string;
  compatible: string[];
  size: number;
  sha256: string;
  minAgentVersion: string | undefined;
  keyId: string;
  createdAt: number;
}

/**
 * A capability whose own rows refer to firmware images (jobs, rollouts). The firmware store asks it
 * before deleting an image, and never reads the capability's tables itself.
 */
export interface FirmwareImageUser {
  /** True while the capability still needs the image, so that it must not be deleted. */
  usesImage(firmwareId: number, executor?: Executor): boolean | Promise<boolean>;
  /**
   * Drops the capability's rows that refer to the image (only finished ones remain, as `usesImage`
   * said false). Called inside the store's delete transaction, on the same database, so that the
   * rows and the image go together or not at all: run on `executor`.
   */
  releaseImage?(firmwareId: number, executor: Executor): void | Promise<void>;
}
