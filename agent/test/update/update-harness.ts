import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { EventEmitter } from "node:events";
import { copyFileSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  canonicalManifest,
  type FirmwareManifest,
  firmwareKeyId,
  type JobStatus,
  type SignedManifest,
} from "@fieldgate/shared";
import { afterEach, beforeEach } from "vitest";
import { aggregateStatus, type CheckKind } from "../../src/health/health-check.js";
import { InstalledVersionStore } from "../../src/update/installed-version-store.js";
import { AbSlotsInstaller, type Installer } from "../../src/update/installers.js";
import { UpdateJobStore } from "../../src/update/update-job-store.js";
import { UpdateMachine, type UpdateMachineDeps } from "../../src/update/update-machine.js";
import type { UpdateState } from "../../src/update/update-states.js";
import { verifyBeforeInstall } from "../../src/update/verify-before-install.js";
import { memoryLogger } from "../helpers/logger.js";
import { tempDir } from "../helpers/tmp.js";

/** Thrown by the test hook to stand in for SIGKILL: the machine is dropped without any cleanup. */
export class Crash extends Error {}

export const OLD_IMAGE = Buffer.from("old firmware ".repeat(50));
export const NEW_IMAGE = Buffer.from("new firmware 2.0.0 ".repeat(80));

const key = generateKeyPairSync("ed25519");
export const publicPem = key.publicKey.export({ type: "spki", format: "pem" }).toString();

export function signedImage(version: string, image: Buffer, over: Partial<FirmwareManifest> = {}): SignedManifest {
  const manifest: FirmwareManifest = {
    v: 1,
    name: "gw-os",
    version,
    compatible: ["gw-a"],
    size: image.length,
    sha256: createHash("sha256").update(image).digest("hex"),
    created: "2026-01-01T00:00:00.000Z",
    ...over,
  };
  return {
    manifest,
    signature: sign(null, Buffer.from(canonicalManifest(manifest)), key.privateKey).toString("base64"),
    keyId: firmwareKeyId(publicPem),
  };
}

/** One check as the fake health has it, with its kind (`command` unless given). */
export interface FakeCheck {
  name: string;
  status: "ok" | "warning" | "critical" | "unknown";
  message?: string;
  kind?: CheckKind;
}

/**
 * A health source whose checks the test sets. `new FakeHealth("critical")` holds one critical
 * program check (`command.app`), which the default gate holds on; `set` replaces the checks.
 */
export class FakeHealth extends EventEmitter<{ change: [{ status: string }] }> {
  private checks: FakeCheck[] = [];
  constructor(status: FakeCheck["status"] = "ok") {
    super();
    this.checks = status === "ok" ? [] : [{ name: "command.app", status, message: `app is ${status}` }];
  }
  snapshot() {
    const checks = this.checks.map((c) => ({ name: c.name, status: c.status, message: c.message ?? "" }));
    return { status: aggregateStatus(checks), checks };
  }
  kindOf(name: string): CheckKind | undefined {
    return (
      this.checks.find((c) => c.name === name)?.kind ??
      (this.checks.some((c) => c.name === name) ? "command" : undefined)
    );
  }
  /** Replaces every check: a status alone stands for the one program check `command.app`. */
  set(checks: FakeCheck[] | FakeCheck["status"]) {
    this.checks =
      typeof checks === "string"
        ? checks === "ok"
          ? []
          : [{ name: "command.app", status: checks, message: `app is ${checks}` }]
        : checks;
    this.emit("change", this.snapshot());
  }
}

/** One device: a data dir, ab slots with the old image active, installed version 1.0.0. */
export class Device {
  readonly root: string;
  readonly dataDir: string;
  readonly dbPath: string;
  readonly sources: string;
  readonly reports: { jobId: string; status: JobStatus }[] = [];
  readonly versions: InstalledVersionStore;
  readonly log = memoryLogger();
  stores: UpdateJobStore[] = [];

  constructor(readonly dir: string) {
    this.root = join(dir, "slots");
    this.dataDir = join(dir, "data");
    this.dbPath = join(this.dataDir, "agent.db");
    this.sources = join(dir, "sources");
    mkdirSync(join(this.root, "a"), { recursive: true });
    mkdirSync(this.sources, { recursive: true });
    writeFileSync(join(this.root, "a", "image.bin"), OLD_IMAGE);
    symlinkSync("a", join(this.root, "current"));
    this.versions = new InstalledVersionStore(this.dataDir);
    this.versions.set("1.0.0");
  }

  /** Publishes an image where the fake downloader finds it. */
  publish(signed: SignedManifest, image: Buffer): void {
    writeFileSync(join(this.sources, signed.manifest.sha256), image);
  }

  machine(over: Partial<UpdateMachineDeps> = {}, installer?: Installer): UpdateMachine {
    const store = new UpdateJobStore(this.dbPath);
    this.stores.push(store);
    const staging = join(this.dataDir, "staging");
    return new UpdateMachine({
      store,
      installer: installer ?? new AbSlotsInstaller(this.root),
      // Stands in for FirmwareDownloader: same staging file name, same contract.
      downloader: {
        download: async (signed) => {
          mkdirSync(staging, { recursive: true });
          const part = join(staging, `${signed.manifest.sha256}.part`);
          copyFileSync(join(this.sources, signed.manifest.sha256), part);
          return part;
        },
      },
      verify: verifyBeforeInstall,
      health: new FakeHealth("ok"),
      installedVersions: this.versions,
      reporter: async (jobId, status) => {
        this.reports.push({ jobId, status });
      },
      clock: { now: () => Date.now() },
      logger: this.log.logger,
      updatesEnabled: true,
      publicKeys: () => [publicPem],
      deviceFirmwareCompat: "gw-a",
      agentVersion: "0.1.0",
      certificateNotAfter: () => Date.now() + 86_400_000,
      freeBytes: () => 1e12,
      options: { confirmDeadlineMs: 200, jobTimeoutMs: 60_000 },
      ...over,
    });
  }

  /** A hook that crashes once, at `state` and `moment`. */
  static crashAt(state: UpdateState, moment: "persisted" | "done"): UpdateMachineDeps["onPersist"] {
    let armed = true;
    return (s, m) => {
      if (armed && s === state && m === moment) {
        armed = false;
        throw new Crash(`crash at ${state} (${moment})`);
      }
    };
  }

  current(): string {
    return readlinkSync(join(this.root, "current"));
  }

  slotImage(slot: string): Buffer | undefined {
    try {
      return readFileSync(join(this.root, slot, "image.bin"));
    } catch {
      return undefined;
    }
  }

  statuses(jobId: string): string[] {
    return this.reports.filter((r) => r.jobId === jobId).map((r) => r.status.status);
  }

  last(jobId: string): JobStatus | undefined {
    return this.reports.filter((r) => r.jobId === jobId).at(-1)?.status;
  }

  close(): void {
    for (const s of this.stores) s.close();
  }
}

/**
 * A device in a fresh temp dir for each test, with the signed 2.0.0 image published to it.
 * Registers its own beforeEach/afterEach; read `dev` and `tmp` inside tests.
 */
export function useDevice() {
  const signed = signedImage("2.0.0", NEW_IMAGE);
  const state: { tmp?: ReturnType<typeof tempDir>; dev?: Device } = {};
  beforeEach(() => {
    state.tmp = tempDir();
    state.dev = new Device(state.tmp.dir);
    state.dev.publish(signed, NEW_IMAGE);
  });
  afterEach(() => {
    state.dev?.close();
    state.tmp?.cleanup();
  });
  return {
    signed,
    get dev(): Device {
      if (!state.dev) throw new Error("useDevice: only inside a test");
      return state.dev;
    },
    get tmp(): ReturnType<typeof tempDir> {
      if (!state.tmp) throw new Error("useDevice: only inside a test");
      return state.tmp;
    },
  };
}
