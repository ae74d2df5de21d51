import { lookup } from "node:dns/promises";
import { existsSync, readFileSync, statfsSync } from "node:fs";
import { request } from "node:https";
import net from "node:net";
import tls from "node:tls";
import { ENROLL_CHECK_DIGEST, type EnrollCheckResponse, type FieldgateError } from "@fieldgate/shared";
import mqtt from "mqtt";
import type { AgentConfig } from "../config/config-schema.js";
import { FileDesiredConfigStore } from "../config/desired-config.js";
import { checkFileModes } from "../config/file-modes.js";
import { ConfigInvalidError, type ConfigProblem, howToCreateConfig, loadConfig } from "../config/load-config.js";
import { FactoryKey } from "../identity/factory-key.js";
import { type Identity, IdentityStore } from "../identity/identity-store.js";
import { isProcessAlive, readStatus } from "../status/status-file.js";
import { apiUrl, postJson } from "../transport/https-json.js";
import { checkBluetooth } from "./bluetooth-check.js";
import type { DoctorResult, DoctorStatus } from "./doctor-result.js";
import { checkSerialDriver } from "./serial-check.js";

export type { DoctorResult, DoctorStatus } from "./doctor-result.js";

export interface DoctorOptions {
  configFile: string;
  env?: NodeJS.ProcessEnv;
  /** The device's clock; injected so a wrong clock can be diagnosed in tests without faking time. */
  now?: () => number;
  timeoutMs?: number;
}

/** Beyond this, certificates cannot be validated either way (they are backdated by 5 minutes). */
const CLOCK_FAIL_MS = 5 * 60_000;
const CLOCK_WARN_MS = 60_000;

/**
 * A field engineer's diagnosis of the gateway, one check after another, each with a fix: config,
 * file modes, DNS, TCP, TLS, clock, registration and window, certificate, broker, updates, Bluetooth (when BLE
 * links are configured), disk. Later checks that depend on a failed one are reported as skipped
 * (warning) rather than failing twice.
 */
export class Doctor {
  private readonly now: () => number;
  private readonly timeoutMs: number;

  constructor(private readonly options: DoctorOptions) {
    this.now = options.now ?? Date.now;
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  async run(): Promise<DoctorResult[]> {
    const results: DoctorResult[] = [];
    const add = (r: DoctorResult) => results.push(r);

    const config = this.config(add);
    if (!config) return results;
    for (const r of fileModeChecks(config, this.options.configFile)) add(r);

    const url = new URL(config.cloud.url);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const port = Number(url.port || 443);
    const store = new IdentityStore(config.dataDir);
    const identity = store.load();
    const ca = this.trustedCa(config, identity);

    const dns = await this.dns(host);
    add(dns);
    const tcp = dns.status === "fail" ? skipped("tcp", "DNS failed") : await this.tcp(host, port);
    add(tcp);
    const reachable = tcp.status === "ok";
    add(reachable ? await this.tls(host, port, ca) : skipped("tls", "the cloud is not reachable"));
    add(reachable ? await this.clock(url) : skipped("clock", "the cloud is not reachable"));
    add(this.certificate(identity, config.uuid));
    if (!identity)
      add(reachable ? await this.registration(config) : skipped("registration", "the cloud is not reachable"));
    add(
      identity && reachable
        ? await this.broker(config, identity)
        : skipped("broker", identity ? "the cloud is not reachable" : "not enrolled yet"),
    );
    add(updatesCheck(config));
    // Only with serial or BLE links configured; the cloud's links, once applied, replace the file's.
    const links = new FileDesiredConfigStore(config.dataDir).load()?.desired.links ?? config.links;
    const serial = await checkSerialDriver(links);
    if (serial) add(serial);
    const bluetooth = await checkBluetooth(links);
    if (bluetooth) add(bluetooth);
    add(this.disk(config));
    return results;
  }

  /** The config, or `undefined` after one failed line per problem in it, each with its fix. */
  private config(add: (r: DoctorResult) => void): AgentConfig | undefined {
    const file = this.options.configFile;
    if (!existsSync(file)) {
      add({
        check: "config",
        status: "fail",
        code: "CONFIG_INVALID",
        message: `${file} does not exist`,
        fix: howToCreateConfig(file),
      });
      return undefined;
    }
    try {
      const { config, warnings } = loadConfig({ file, env: this.options.env ?? process.env, now: this.now });
      add({ check: "config", status: "ok", message: `${file} is valid` });
      for (const message of warnings) add({ check: "config", status: "warning", message });
      return config;
    } catch (err) {
      const problems: readonly ConfigProblem[] =
        err instanceof ConfigInvalidError
          ? err.problems
          : [{ field: (err as FieldgateError).field ?? "", message: (err as Error).message }];
      for (const p of problems) {
        add({
          check: "config",
          status: "fail",
          code: (err as FieldgateError).code ?? "INTERNAL",
          message: `${p.field ? `${p.field}: ` : ""}${p.message}`,
          fix: p.field ? `correct ${p.field} in ${file} (see docs/config.md)` : `correct ${file} (see docs/config.md)`,
        });
      }
      return undefined;
    }
  }

  private trustedCa(config: AgentConfig, identity: Identity | undefined): string | undefined {
    if (config.cloud.caFile) {
      try {
        return readFileSync(config.cloud.caFile, "utf8");
      } catch {
        return undefined;
      }
    }
    return identity?.caPem;
  }

  private async dns(host: string): Promise<DoctorResult> {
    if (net.isIP(host)) return { check: "dns", status: "ok", message: `${host} is an address; no lookup needed` };
    try {
      const { address } = await withTimeout(lookup(host), this.timeoutMs);
      return { check: "dns", status: "ok", message: `${host} resolves to ${address}` };
    } catch (err) {
      return {
        check: "dns",
        status: "fail",
        message: `${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        fix: "check the DNS servers (/etc/resolv.conf) or put the cloud's address in cloud.url",
      };
    }
  }

  private tcp(host: string, port: number): Promise<DoctorResult> {
    const started = this.now();
    return new Promise((resolve) => {
      const socket = net.connect({ host, port, timeout: this.timeoutMs });
      const done = (r: DoctorResult) => {
        socket.destroy();
        resolve(r);
      };
      socket.once("connect", () =>
        done({
          check: "tcp",
          status: "ok",
          message: `${host}:${port} accepts connections (${Math.max(0, this.now() - started)} ms)`,
        }),
      );
      socket.once("timeout", () => done(tcpFail(host, port, "no answer")));
      socket.once("error", (err) => done(tcpFail(host, port, (err as NodeJS.ErrnoException).code ?? err.message)));
    });
  }

  private tls(host: string, port: number, ca: string | undefined): Promise<DoctorResult> {
    return new Promise((resolve) => {
      const socket = tls.connect({
        host,
        port,
        servername: net.isIP(host) ? undefined : host,
        ca,
        rejectUnauthorized: false,
        timeout: this.timeoutMs,
      });
      const done = (r: DoctorResult) => {
        socket.destroy();
        resolve(r);
      };
      socket.once("secureConnect", () => {
        const reason = socket.authorizationError ? String(socket.authorizationError) : undefined;
        const identityError = reason ? undefined : tls.checkServerIdentity(host, socket.getPeerCertificate());
        if (!reason && !identityError) {
          done({ check: "tls", status: "ok", message: "the server certificate is trusted and names this host" });
          return;
        }
        const clockIssue = reason === "CERT_NOT_YET_VALID" || reason === "CERT_HAS_EXPIRED";
        done({
          check: "tls",
          status: "fail",
          message: reason
            ? `the server certificate is not trusted (${reason})`
            : `the server certificate does not name ${host}`,
          fix: clockIssue
            ? "set correct UTC time; certificates cannot be validated"
            : reason
              ? "set cloud.caFile to the cloud's CA certificate (<cloud data-dir>/pki/ca.crt)"
              : `start the cloud with --hostname ${host}, or use a name its certificate lists in cloud.url`,
        });
      });
      socket.once("timeout", () =>
        done({
          check: "tls",
          status: "fail",
          message: "no TLS handshake",
          fix: "check that cloud.url points at the cloud's HTTPS port",
        }),
      );
      socket.once("error", (err) =>
        done({
          check: "tls",
          status: "fail",
          message: `TLS failed: ${err.message}`,
          fix: "check that cloud.url points at the cloud's HTTPS port",
        }),
      );
    });
  }

  /**
   * The cloud's clock from its HTTPS Date header. Read even when TLS is not trusted: a wrong clock
   * is the usual reason TLS fails, and only the time is used, for this diagnosis.
   */
  private clock(url: URL): Promise<DoctorResult> {
    return new Promise((resolve) => {
      const sent = this.now();
      const req = request(
        new URL("/api/v1/health", url),
        { method: "GET", rejectUnauthorized: false, timeout: this.timeoutMs },
        (res) => {
          res.resume();
          const date = Date.parse(String(res.headers.date ?? ""));
          if (Number.isNaN(date)) {
            resolve({
              check: "clock",
              status: "warning",
              message: "the cloud sent no Date header",
              fix: "check the device's time against a reliable source (NTP)",
            });
            return;
          }
          const local = (sent + this.now()) / 2;
          const skew = date + 500 - local; // the header has whole seconds
          const text = `${Math.round(Math.abs(skew) / 1000)} s ${skew > 0 ? "behind" : "ahead of"} the cloud`;
          if (Math.abs(skew) > CLOCK_FAIL_MS) {
            resolve({
              check: "clock",
              status: "fail",
              message: `the device clock is ${text}`,
              fix: "set correct UTC time; certificates cannot be validated",
            });
          } else if (Math.abs(skew) > CLOCK_WARN_MS) {
            resolve({
              check: "clock",
              status: "warning",
              message: `the device clock is ${text}`,
              fix: "enable time synchronisation (NTP)",
            });
          } else
            resolve({
              check: "clock",
              status: "ok",
              message: `within ${Math.max(1, Math.round(Math.abs(skew) / 1000))} s of the cloud`,
            });
        },
      );
      req.once("timeout", () => req.destroy(new Error("no answer")));
      req.once("error", (err) =>
        resolve({
          check: "clock",
          status: "warning",
          message: `could not read the cloud's time: ${err.message}`,
          fix: "check the device's time against a reliable source (NTP)",
        }),
      );
      req.end();
    });
  }

  private certificate(identity: Identity | undefined, uuid: string): DoctorResult {
    if (!identity) {
      return {
        check: "certificate",
        status: "warning",
        message: "no operational certificate: the device is not enrolled",
        fix: "enroll: configure enrollment.token or enrollment.factoryKeyFile, or run fieldgate-agent enroll",
      };
    }
    const daysLeft = Math.floor((Date.parse(identity.notAfter) - this.now()) / 86_400_000);
    if (daysLeft < 0) {
      return {
        check: "certificate",
        status: "fail",
        message: `certificate ${identity.serial} expired on ${identity.notAfter}`,
        fix: `ask an operator to run fieldgate-cloud devices reset-token ${uuid}; the agent then re-enrolls`,
      };
    }
    const status: DoctorStatus = daysLeft < 14 ? "warning" : "ok";
    return {
      check: "certificate",
      status,
      message: `certificate ${identity.serial} valid until ${identity.notAfter} (${daysLeft} days)`,
      ...(status === "warning" && { fix: "check that the agent runs and reaches the cloud: it renews by itself" }),
    };
  }

  /** Asks the cloud whether the device is registered and its window open, proving itself as enrollment would. */
  private async registration(config: AgentConfig): Promise<DoctorResult> {
    const body: Record<string, unknown> = { v: 1, uuid: config.uuid };
    if (config.enrollment.token) Object.assign(body, { method: "token", token: config.enrollment.token });
    else if (config.enrollment.factoryKeyFile) {
      const proof = FactoryKey.load(config.enrollment.factoryKeyFile).prove(
        config.uuid,
        ENROLL_CHECK_DIGEST,
        Date.now(),
      );
      Object.assign(body, { method: "factory-key", factory: proof });
    } else {
      return {
        check: "registration",
        status: "warning",
        message: "no token or factory key configured, so the cloud cannot be asked",
        fix: "configure enrollment.token or enrollment.factoryKeyFile",
      };
    }
    let answer: EnrollCheckResponse;
    try {
      const ca = this.trustedCa(config, undefined);
      const url = apiUrl(config.cloud.url, "/api/v1/enroll/check");
      const { status, json } = await postJson(url, body, ca === undefined ? {} : { ca }, this.timeoutMs);
      if (status >= 400) throw new Error(`HTTP ${status}`);
      answer = json as EnrollCheckResponse;
    } catch (err) {
      return {
        check: "registration",
        status: "fail",
        message: `the cloud did not answer: ${(err as Error).message}`,
        fix: "fix the checks above first",
      };
    }
    if (!answer.verified) {
      return {
        check: "registration",
        status: "fail",
        message:
          "the cloud does not accept this device's token or factory key: it is not registered, or the token or key is wrong",
        fix: `ask an operator to add ${config.uuid} (with its factory key) or to give a new token with reset-token`,
      };
    }
    if (!answer.windowOpen) {
      return {
        check: "registration",
        status: "warning",
        message: "registered, but no enrollment window is open",
        fix: `ask an operator to run fieldgate-cloud devices reset-token ${config.uuid}`,
      };
    }
    return {
      check: "registration",
      status: "ok",
      message: `registered; the enrollment window is open until ${answer.windowExpiresAt}`,
    };
  }

  /** Whether the broker takes this certificate; a running agent's own connection counts as proof. */
  private async broker(config: AgentConfig, identity: Identity): Promise<DoctorResult> {
    const status = readStatus(config.dataDir);
    if (status && isProcessAlive(status.pid) && status.state === "connected") {
      return { check: "broker", status: "ok", message: "the running agent is connected to the broker" };
    }
    const url = config.cloud.mqttUrl ?? identity.mqttUrl;
    return new Promise((resolve) => {
      // clean: false keeps the device's persistent session intact.
      const client = mqtt.connect(url, {
        clientId: config.uuid,
        clean: false,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: this.timeoutMs,
        key: identity.keyPem,
        cert: identity.certPem,
        ca: identity.caPem,
      });
      const done = (r: DoctorResult) => {
        client.end(true);
        resolve(r);
      };
      client.once("connect", () => done({ check: "broker", status: "ok", message: `${url} accepts this certificate` }));
      client.once("error", (err) => {
        const refused = (err as { code?: number }).code === 5;
        done({
          check: "broker",
          status: "fail",
          message: refused
            ? "the broker refuses this certificate (revoked, or the device was deleted or replaced)"
            : `cannot connect to ${url}: ${err.message}`,
          fix: refused
            ? `ask an operator to run fieldgate-cloud devices reset-token ${config.uuid}; the agent re-enrolls`
            : "check cloud.mqttUrl and that the broker's port is open",
        });
      });
      client.once("close", () =>
        done({
          check: "broker",
          status: "fail",
          message: `${url} closed the connection`,
          fix: "check cloud.mqttUrl and the broker's port",
        }),
      );
    });
  }

  private disk(config: AgentConfig): DoctorResult {
    try {
      const fs = statfsSync(config.dataDir);
      const pct = (fs.bavail / fs.blocks) * 100;
      const t = config.health.thresholds;
      const message = `${pct.toFixed(1)} % free on the data directory's file system`;
      if (pct < t.diskFreeCritPct)
        return { check: "disk", status: "fail", message, fix: `free space on the partition of ${config.dataDir}` };
      if (pct < t.diskFreeWarnPct)
        return {
          check: "disk",
          status: "warning",
          message,
          fix: `free space on the partition of ${config.dataDir} soon`,
        };
      return { check: "disk", status: "ok", message };
    } catch (err) {
      return {
        check: "disk",
        status: "warning",
        message: `cannot read ${config.dataDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        fix: "create the data directory, or fix dataDir",
      };
    }
  }
}

/**
 * Updates need both the switch and an installer: enabled without one, every job would end
 * INSTALL_FAILED; disabled, every job ends UPDATES_DISABLED ("Update not allowed"), which may be meant.
 */
function updatesCheck(config: AgentConfig): DoctorResult {
  const { enabled, installer } = config.updates;
  if (!enabled) {
    return {
      check: "updates",
      status: "warning",
      message: "software updates are disabled (updates.enabled: false): update jobs end UPDATES_DISABLED",
      fix: "to allow them, set updates.enabled to true and configure updates.installer (docs/updates.md)",
    };
  }
  if (!installer) {
    return {
      check: "updates",
      status: "fail",
      message: "software updates are enabled but no installer is configured: every job would end INSTALL_FAILED",
      fix: "configure updates.installer (script, ab-slots or agent; docs/updates.md), or set updates.enabled to false",
    };
  }
  return { check: "updates", status: "ok", message: `software updates are enabled (installer ${installer.type})` };
}

/** The modes `run` refuses (a readable key, a writable data directory) and warns about (a readable token). */
function fileModeChecks(config: AgentConfig, configFile: string): DoctorResult[] {
  const { errors, warnings } = checkFileModes({
    dataDir: config.dataDir,
    factoryKeyFile: config.enrollment.factoryKeyFile,
    configFile,
  });
  if (errors.length === 0 && warnings.length === 0) {
    return [{ check: "files", status: "ok", message: "the data directory, keys and config file are private" }];
  }
  const fixOf = (message: string) => /run `(chmod [^`]+)`/.exec(message)?.[1] ?? "see docs/security.md";
  return [
    ...errors.map(
      (e): DoctorResult => ({
        check: "files",
        status: "fail",
        code: "CONFIG_INVALID",
        message: e.message,
        fix: fixOf(e.message),
      }),
    ),
    ...warnings.map((w): DoctorResult => ({ check: "files", status: "warning", message: w, fix: fixOf(w) })),
  ];
}

function skipped(check: string, why: string): DoctorResult {
  return { check, status: "warning", message: `skipped: ${why}` };
}

function tcpFail(host: string, port: number, reason: string): DoctorResult {
  return {
    check: "tcp",
    status: "fail",
    message: `${host}:${port} is not reachable (${reason})`,
    fix: "check the network route, firewalls, and the cloud's --http-port",
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref()),
  ]);
}
