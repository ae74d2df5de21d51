import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type ConfigReported,
  checkLinks,
  type DesiredConfig,
  DesiredConfigMessage,
  deviceTopic,
  FieldgateError,
  SchemaValidator,
} from "@fieldgate/shared";
import type { Logger } from "pino";
import { writeFileAtomic } from "../identity/atomic-file.js";
import type { MessageSink } from "../transport/mqtt-session.js";

/** The last desired config the agent applied, as persisted. */
export interface AppliedDesired {
  version: number;
  desired: DesiredConfig;
}

/** Where the last applied desired config is kept between restarts. */
export interface DesiredConfigStore {
  load(): AppliedDesired | undefined;
  save(applied: AppliedDesired): void;
}

/** `<dataDir>/desired-config.json`, written atomically (temp file, fsync, rename). */
export class FileDesiredConfigStore implements DesiredConfigStore {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, "desired-config.json");
  }

  load(): AppliedDesired | undefined {
    if (!existsSync(this.path)) return undefined;
    try {
      const parsed = JSON.parse(readFileSync(this.path, "utf8")) as Partial<AppliedDesired>;
      if (typeof parsed.version !== "number" || typeof parsed.desired !== "object" || parsed.desired === null) {
        return undefined;
      }
      return { version: parsed.version, desired: parsed.desired };
    } catch {
      return undefined;
    }
  }

  save(applied: AppliedDesired): void {
    writeFileAtomic(this.path, `${JSON.stringify(applied, null, 2)}\n`, 0o600);
  }
}

/** Dependencies of the handler. */
export interface DesiredConfigHandlerOptions {
  uuid: string;
  store: DesiredConfigStore;
  /**
   * Puts a desired config into effect and returns what to report about it (e.g. the levels in
   * force). Throws a `FieldgateError` to refuse it; the last good config then stays.
   */
  apply: (desired: DesiredConfig) => Record<string, unknown>;
  logger: Logger;
  clock?: () => number;
}

const validator = new SchemaValidator();

/**
 * Acts on `config/desired` and acknowledges on `config/reported`.
 *
 * A valid message is applied, persisted (so a restart re-applies it before the cloud is reached)
 * and reported as `{v, ts, version, ...effective}`. An invalid one (bad JSON, wrong schema, or
 * refused by `apply`) leaves the last good config in force and is reported with that config's
 * version, `rejectedVersion` and `error`. Every message is applied, even with a lower version:
 * the cloud's retained message is the truth, and a rebuilt cloud starts counting again at 1.
 */
export class DesiredConfigHandler {
  private applied: AppliedDesired = { version: 0, desired: {} };
  private report: ConfigReported | undefined;
  private sink: MessageSink | undefined;
  private readonly desiredTopic: string;
  private readonly reportedTopic: string;
  private readonly clock: () => number;
  private readonly onConnected = () => void this.publishReport();

  constructor(private readonly options: DesiredConfigHandlerOptions) {
    this.desiredTopic = deviceTopic(options.uuid, { kind: "config/desired" });
    this.reportedTopic = deviceTopic(options.uuid, { kind: "config/reported" });
    this.clock = options.clock ?? Date.now;
  }

  /** The config in force and its version (0 before any). */
  get current(): AppliedDesired {
    return structuredClone(this.applied);
  }

  /** The last report made, sent or not. */
  get lastReport(): ConfigReported | undefined {
    return this.report;
  }

  /** Re-applies the persisted config, if any; run before the agent connects. */
  start(): void {
    const saved = this.options.store.load();
    if (!saved) {
      // Version 0: nothing desired yet; the report still tells the operator the levels in force.
      this.setReport({ version: 0, ...this.options.apply({}) });
      return;
    }
    try {
      const checked = validator.parse(DesiredConfigMessage, { v: 1, version: saved.version, ...saved.desired });
      // Logged before applying: the config may raise the level above info.
      this.options.logger.info({ version: checked.version }, `re-applying desired config version ${checked.version}`);
      const effective = this.options.apply(desiredOf(checked));
      this.applied = { version: checked.version, desired: desiredOf(checked) };
      this.setReport({ version: checked.version, ...effective });
    } catch (err) {
      this.options.logger.warn(
        { err: (err as Error).message },
        "the saved desired config is no longer valid; using the configuration file",
      );
      this.setReport({ version: 0, ...this.options.apply({}) });
    }
  }

  /** Starts answering through the session: the current state is reported on every connect. */
  attach(sink: MessageSink): void {
    this.sink?.off("connected", this.onConnected);
    this.sink = sink;
    sink.on("connected", this.onConnected);
    if (sink.connected) void this.publishReport();
  }

  detach(): void {
    this.sink?.off("connected", this.onConnected);
    this.sink = undefined;
  }

  /** A message from the session; other topics are ignored. Resolves once the report is sent or failed. */
  async handle(topic: string, payload: Buffer): Promise<void> {
    if (topic !== this.desiredTopic) return;
    let message: DesiredConfigMessage;
    try {
      let json: unknown;
      try {
        json = JSON.parse(payload.toString("utf8"));
      } catch {
        throw new FieldgateError("PAYLOAD_MALFORMED", "the desired config is not valid JSON");
      }
      try {
        // Links first, item by item against their own type, so the error names the right field.
        const links = (json as { links?: unknown } | null)?.links;
        if (links !== undefined) checkLinks(links, "links", "VALIDATION_FAILED", { devicePaths: true });
        message = validator.parse(DesiredConfigMessage, json);
      } catch (err) {
        const version = (json as { version?: unknown } | null)?.version;
        throw Object.assign(err as Error, { rejectedVersion: Number.isInteger(version) ? version : undefined });
      }
      const effective = this.applyChecked(message);
      this.setReport({ version: message.version, ...effective });
    } catch (err) {
      const rejectedVersion = (err as { rejectedVersion?: number }).rejectedVersion;
      const field = err instanceof FieldgateError && err.field ? ` (field: ${err.field})` : "";
      const error = `${err instanceof FieldgateError ? err.code : "CONFIG_INVALID"}: ${(err as Error).message}${field}`;
      this.options.logger.warn(
        { error, rejectedVersion, keptVersion: this.applied.version },
        `refused a desired config; keeping version ${this.applied.version}`,
      );
      this.setReport({
        version: this.applied.version,
        ...(this.report ? stripMeta(this.report) : {}),
        ...(rejectedVersion !== undefined && { rejectedVersion }),
        error,
      });
    }
    await this.publishReport();
  }

  private applyChecked(message: DesiredConfigMessage): Record<string, unknown> {
    const desired = desiredOf(message);
    let effective: Record<string, unknown>;
    try {
      effective = this.options.apply(desired);
    } catch (err) {
      throw Object.assign(err as Error, { rejectedVersion: message.version });
    }
    const changed =
      message.version !== this.applied.version || JSON.stringify(desired) !== JSON.stringify(this.applied.desired);
    this.applied = { version: message.version, desired };
    if (changed) {
      this.options.store.save(this.applied);
      this.options.logger.info(
        { version: message.version, ...effective },
        `applied desired config version ${message.version}`,
      );
    }
    return effective;
  }

  private setReport(fields: Omit<ConfigReported, "v" | "ts">): void {
    this.report = { v: 1, ts: this.clock(), ...fields };
  }

  private async publishReport(): Promise<void> {
    const sink = this.sink;
    const report = this.report;
    if (!sink?.connected || !report) return;
    try {
      await sink.publish(this.reportedTopic, JSON.stringify({ ...report, ts: this.clock() }), { qos: 1 });
    } catch (err) {
      // Sent again on the next connect.
      this.options.logger.debug({ err: (err as Error).message }, "config/reported not sent; retrying on reconnect");
    }
  }
}

function desiredOf(message: DesiredConfigMessage): DesiredConfig {
  const { v: _v, version: _version, ...desired } = message;
  return desired;
}

/** A previous report's effective fields, without its envelope or its last error. */
function stripMeta(report: ConfigReported): Record<string, unknown> {
  const {
    v: _v,
    ts: _ts,
    version: _version,
    error: _error,
    rejectedVersion: _rejected,
    ...rest
  } = report as ConfigReported & { rejectedVersion?: number };
  return rest;
}
