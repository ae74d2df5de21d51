import { EventEmitter } from "node:events";
import { createSecureContext, type SecureContext } from "node:tls";
import { deviceSubscriptions, deviceTopic, FieldgateError, type Presence } from "@fieldgate/shared";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type { Logger } from "pino";
import { Backoff } from "../retry/backoff.js";

/** Connection state of the session, as shown in status.json. */
export type SessionState = "idle" | "connecting" | "connected" | "offline" | "stopped";

/** Events of a session; payloads typed per name. */
export interface SessionEvents {
  state: [SessionState];
  connected: [];
  disconnected: [Error | undefined];
  message: [string, Buffer];
  /** The broker answered CONNACK "not authorized": the certificate is revoked, superseded or unknown. */
  refused: [Error];
}

/** What the outbox publisher needs from a transport; `MqttSession` is the real one, tests may fake it. */
export interface MessageSink {
  readonly connected: boolean;
  /** Resolves on PUBACK (QoS 1); rejects if the connection drops first. */
  publish(topic: string, payload: string | Buffer, options?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
  on(event: "connected", listener: () => void): this;
  on(event: "disconnected", listener: (error: Error | undefined) => void): this;
  off(event: "connected", listener: () => void): this;
  off(event: "disconnected", listener: (error: Error | undefined) => void): this;
}

/** TLS material and tuning of a session. */
export interface MqttSessionOptions {
  uuid: string;
  /** `mqtts://host:port` */
  url: string;
  keyPem: string;
  certPem: string;
  caPem: string;
  keepaliveS: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  logger: Logger;
  connectTimeoutMs?: number;
  random?: () => number;
}

interface Pending {
  reject: (err: Error) => void;
}

const OFFLINE = Buffer.from(JSON.stringify({ v: 1, state: "offline" } satisfies Presence));

/**
 * An MQTT 3.1.1 session over mTLS with a persistent broker session (clean: false) and a retained
 * presence with an `offline` last will.
 *
 * Reconnects are ours, not mqtt.js's: every attempt is a fresh client with `reconnectPeriod: 0`,
 * scheduled with jittered exponential backoff. A dropped connection rejects every publish still
 * waiting for its PUBACK; the outbox owns redelivery (it republishes its persisted batches on the next
 * connect), so nothing depends on mqtt.js's in-memory store surviving.
 */
export class MqttSession extends EventEmitter<SessionEvents> implements MessageSink {
  private client: MqttClient | undefined;
  private pending = new Set<Pending>();
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private currentState: SessionState = "idle";
  private lastFailure: string | undefined;
  private readonly backoff: Backoff;
  /** The key and certificate of the next connection; renewal replaces them. */
  private credentials: { keyPem: string; certPem: string; caPem: string };
  /**
   * The TLS context of those credentials, built once and reused by every reconnect: building one
   * (parsing the key, certificate and CA) cost as much CPU as the handshake itself. When the
   * material does not load, each attempt reports why and retries: a renewal may fix it.
   */
  private tls: { context: SecureContext } | { error: string };
  private switching = false;
  readonly presenceTopic: string;

  constructor(private readonly options: MqttSessionOptions) {
    super();
    this.credentials = { keyPem: options.keyPem, certPem: options.certPem, caPem: options.caPem };
    this.tls = tlsContextOf(this.credentials);
    this.presenceTopic = deviceTopic(options.uuid, { kind: "presence" });
    this.backoff = new Backoff({
      minMs: options.reconnectMinMs,
      maxMs: options.reconnectMaxMs,
      ...(options.random && { random: options.random }),
    });
  }

  get state(): SessionState {
    return this.currentState;
  }

  get connected(): boolean {
    return this.currentState === "connected";
  }

  start(): void {
    if (this.client || this.timer) return;
    this.stopping = false;
    this.connectOnce();
  }

  /** Publishes `offline` (retained) and disconnects cleanly; a clean DISCONNECT discards the will [MQTT-3.14.4-3]. */
  async stop(timeoutMs = 2000): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const client = this.client;
    if (client && this.connected) {
      await withTimeout(this.publish(this.presenceTopic, OFFLINE, { qos: 1, retain: true }), timeoutMs).catch(
        () => undefined,
      );
      await withTimeout(client.endAsync(false), timeoutMs).catch(() => undefined);
    }
    this.dropClient(client, new FieldgateError("CLOUD_UNREACHABLE", "the session is stopping"));
    if (client) client.end(true);
    this.setState("stopped");
  }

  /**
   * Moves the session to a renewed certificate: the current connection ends cleanly (no will, so
   * the device does not go offline) and the next one, at once, uses the new key. Batches not yet
   * acknowledged are replayed by the outbox under their sequence numbers; the cloud counts them once.
   */
  async switchIdentity(
    credentials: { keyPem: string; certPem: string; caPem: string },
    timeoutMs = 5000,
  ): Promise<void> {
    this.credentials = credentials;
    this.tls = tlsContextOf(credentials);
    const client = this.client;
    if (!client || !this.connected) return; // the next attempt picks the new certificate up
    this.switching = true;
    await withTimeout(client.endAsync(false), timeoutMs).catch(() => client.end(true));
  }

  publish(topic: string, payload: string | Buffer, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    const client = this.client;
    if (!client || !this.connected) {
      return Promise.reject(new FieldgateError("CLOUD_UNREACHABLE", "not connected to the broker"));
    }
    return new Promise((resolve, reject) => {
      const entry: Pending = { reject };
      this.pending.add(entry);
      client.publish(topic, payload, { qos: options.qos ?? 1, retain: options.retain ?? false }, (err) => {
        if (!this.pending.delete(entry)) return; // already rejected by a disconnect
        if (err) reject(err);
        else resolve();
      });
    });
  }

  private connectOnce(): void {
    const o = this.options;
    this.setState("connecting");
    if ("error" in this.tls) {
      this.retryLater(`the device key or certificate does not load: ${this.tls.error}`, false);
      return;
    }
    // mqtt.js hands its options to tls.connect, which takes a prepared `secureContext` (its types do not list it).
    const options: IClientOptions & { secureContext: SecureContext } = {
      clientId: o.uuid,
      clean: false,
      protocolVersion: 4,
      keepalive: o.keepaliveS,
      reconnectPeriod: 0,
      connectTimeout: o.connectTimeoutMs ?? 10_000,
      secureContext: this.tls.context,
      rejectUnauthorized: true,
      will: { topic: this.presenceTopic, payload: OFFLINE, qos: 1, retain: true },
    };
    const client = mqtt.connect(o.url, options);
    this.client = client;
    let error: Error | undefined;

    client.on("connect", () => {
      if (this.client !== client) return;
      this.backoff.reset();
      this.lastFailure = undefined;
      this.setState("connected");
      o.logger.info({ url: o.url, uuid: o.uuid }, `connected to ${o.url} as ${o.uuid}`);
      client.subscribe(deviceSubscriptions(o.uuid), { qos: 1 }, (err) => {
        if (err) o.logger.warn({ err: err.message }, "subscribing to the device topics failed");
      });
      const online: Presence = { v: 1, state: "online", ts: Date.now() };
      this.publish(this.presenceTopic, JSON.stringify(online), { qos: 1, retain: true }).catch(() => undefined);
      this.emit("connected");
    });
    client.on("message", (topic, payload) => this.emit("message", topic, payload));
    client.on("error", (err) => {
      error = err;
    });
    client.on("close", () => {
      if (this.client !== client) return;
      const wasConnected = this.connected;
      this.dropClient(client, new FieldgateError("CLOUD_UNREACHABLE", "the connection closed before PUBACK"));
      client.end(true);
      if (this.stopping) return;
      if ((error as { code?: number } | undefined)?.code === 5) this.emit("refused", error as Error);
      this.retryLater(error?.message ?? "connection closed", wasConnected, error);
    });
  }

  /** After a closed connection or a failed attempt: goes offline, logs, and schedules the next attempt. */
  private retryLater(reason: string, wasConnected: boolean, error?: Error): void {
    const o = this.options;
    this.setState("offline");
    const switching = this.switching;
    this.switching = false;
    const delay = switching ? 0 : this.backoff.next();
    const line = wasConnected ? `disconnected from ${o.url}: ${reason}` : `cannot connect to ${o.url}: ${reason}`;
    // One line per distinct failure; a device that stays offline logs its repeats at debug.
    if (switching) o.logger.info({ url: o.url }, "reconnecting with the renewed certificate");
    else if (wasConnected || reason !== this.lastFailure) o.logger.warn({ url: o.url, delayMs: delay }, line);
    else o.logger.debug({ url: o.url, delayMs: delay }, line);
    this.lastFailure = reason;
    if (wasConnected) this.emit("disconnected", error);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.stopping) this.connectOnce();
    }, delay);
  }

  private dropClient(client: MqttClient | undefined, reason: Error): void {
    if (!client || this.client !== client) return;
    this.client = undefined;
    client.removeAllListeners();
    client.on("error", () => undefined); // the discarded client may still report its socket's fate
    const pending = [...this.pending];
    this.pending.clear();
    for (const p of pending) p.reject(reason);
  }

  private setState(state: SessionState): void {
    if (state === this.currentState) return;
    this.currentState = state;
    this.emit("state", state);
  }
}

function tlsContextOf(credentials: {
  keyPem: string;
  certPem: string;
  caPem: string;
}): { context: SecureContext } | { error: string } {
  try {
    return {
      context: createSecureContext({ key: credentials.keyPem, cert: credentials.certPem, ca: credentials.caPem }),
    };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
