import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import tls from "node:tls";
import {
  type DesiredConfigMessage,
  deviceTopic,
  type ErrorCode,
  FieldgateError,
  parseDeviceTopic,
  type TelemetryRefused,
} from "@fieldgate/shared";
import { Aedes, type AuthenticateError, type Client, type Subscription } from "aedes";
import type { Logger } from "pino";
import type { EventRecorder } from "../events/device-events.js";
import type { DeviceIngest } from "../ingest/device-ingest.js";
import { PendingConnections, type PendingLimits } from "../listeners/pending-connections.js";
import { serverTlsPolicy } from "../listeners/tls-policy.js";
import type { DeviceRegistry } from "../registry/device-registry.js";
import { authorizeDevicePublish, authorizeDeviceSubscribe, mayDeliverToDevice } from "./device-acl.js";
import { limitPacketSize } from "./packet-size-limit.js";
import { PresenceTracker } from "./presence-tracker.js";

export interface MqttBrokerOptions {
  host: string;
  port: number;
  tls: { key: string; cert: string; ca: string };
  /** The device's current desired config, re-published (retained) each time it connects. */
  desiredConfig?: (deviceId: number) => Promise<DesiredConfigMessage | undefined>;
  /** Called each time a device (re)subscribes to `jobs/notify`: re-sends its unfinished update jobs. */
  deviceReady?: (deviceId: number) => void;
  limits: BrokerLimits;
}

/** What one connection may make the broker hold (docs/security.md, "Limits"). */
export interface BrokerLimits extends PendingLimits {
  /** The largest MQTT packet, fixed header included; a bigger one closes the connection. */
  maxPacketSize: number;
  /** From the end of the TLS handshake to an accepted CONNECT. */
  connectTimeoutMs: number;
}

/** Per-connection facts settled at CONNECT, from the verified client certificate. */
interface DeviceSession {
  deviceId: number;
  uuid: string;
  serial: string;
}

const NOT_AUTHORIZED = 5;
/** The agent holds a handful; `commands/{id}` filters are otherwise unbounded, and each is kept in memory. */
export const MAX_SUBSCRIPTIONS_PER_CLIENT = 32;

/**
 * The embedded broker: aedes behind a TLS server that requires a client certificate chained to
 * the CA. Authentication maps the certificate to a device; the ACL keeps each device in its own
 * topic root; ingest stores payloads before the PUBACK.
 */
export class MqttBroker {
  private aedes: Aedes | undefined;
  private server: tls.Server | undefined;
  private readonly sessions = new WeakMap<Client, DeviceSession>();
  /** The desired-config version in aedes' (in-memory) retained store, per device uuid. */
  private readonly retainedDesired = new Map<string, number>();
  private readonly presence: PresenceTracker;
  private readonly pending: PendingConnections;

  constructor(
    private readonly options: MqttBrokerOptions,
    private readonly registry: DeviceRegistry,
    private readonly ingest: DeviceIngest,
    private readonly events: EventRecorder,
    private readonly logger: Logger,
    presence?: PresenceTracker,
  ) {
    this.presence = presence ?? new PresenceTracker(registry, events);
    this.pending = new PendingConnections(options.limits, logger, "mqtt");
  }

  async start(): Promise<number> {
    const aedes = await Aedes.createBroker({
      authenticate: (client, _user, _pass, done) => this.authenticate(client, done),
      authorizePublish: (client, packet, done) => {
        // Devices publish only to the cloud, which stores what it needs in this hook. A retained
        // copy (presence, the will) would serve no subscriber, and aedes' memory persistence matches
        // every new subscription against every retained message: a reconnect storm went quadratic.
        if (client) packet.retain = false;
        this.authorizePublish(client, packet.topic, packet.payload, done);
      },
      authorizeSubscribe: (client, sub, done) => this.authorizeSubscribe(client, sub, done),
      authorizeForward: (client, packet) => {
        const session = this.sessions.get(client);
        return session && mayDeliverToDevice(session.uuid, packet.topic) ? packet : null;
      },
      // No $SYS heartbeat: devices may not read $SYS, and nothing else here listens.
      heartbeatInterval: 24 * 3600_000,
      drainTimeout: 30_000,
      connectTimeout: this.options.limits.connectTimeoutMs,
      maxClientsIdLength: 36,
      // Device topics have five levels at most (fieldgate/v1/{uuid}/commands/{id}).
      maxTopicLevels: 8,
      // Devices publish at QoS 0 or 1; a QoS 2 flood waiting for PUBRELs is held to this many.
      maxInflightInbound: 100,
    });
    this.aedes = aedes;
    aedes.on("clientReady", (client) => {
      const session = this.sessions.get(client);
      if (session) this.presence.connected(session.deviceId, client).catch((err: Error) => this.presenceFailed(err));
    });
    // Unfinished jobs go out when the device subscribes to jobs/notify, not at clientReady: a
    // non-retained message published before the first subscription would be dropped. The agent
    // subscribes on every connect, so this runs once per connection.
    aedes.on("subscribe", (subscriptions, client) => {
      const session = client ? this.sessions.get(client) : undefined;
      if (!session) return;
      const notify = deviceTopic(session.uuid, { kind: "jobs/notify" });
      if (subscriptions.some((s) => s.topic === notify)) this.options.deviceReady?.(session.deviceId);
    });
    aedes.on("clientDisconnect", (client) => {
      const session = this.sessions.get(client);
      if (session) this.presence.disconnected(session.deviceId, client).catch((err: Error) => this.presenceFailed(err));
    });
    aedes.on("keepaliveTimeout", (client) => this.presence.markReason(client, "keepalive-timeout"));
    aedes.on("clientError", (client, err) => {
      this.logger.debug({ clientId: client.id, err: err.message }, "mqtt client error");
    });
    aedes.on("connectionError", (client, err) => {
      this.logger.debug({ clientId: client?.id, err: err.message }, "mqtt connection error");
    });
    this.registry.onRevocation((uuid, reason) => this.dropSession(uuid, reason));

    const { limits } = this.options;
    this.server = tls.createServer(
      {
        key: this.options.tls.key,
        cert: this.options.tls.cert,
        ca: [this.options.tls.ca],
        requestCert: true,
        rejectUnauthorized: true,
        ...serverTlsPolicy(limits.handshakeTimeoutMs),
      },
      (socket) => {
        const client = aedes.handle(socket);
        limitPacketSize(client, limits.maxPacketSize, (announced) => this.refuseOversize(client, announced));
      },
    );
    this.pending.watch(this.server, { timeoutMs: limits.connectTimeoutMs, awaited: "CONNECT" });
    this.server.on("tlsClientError", (err) => this.logger.debug({ err: err.message }, "mqtt tls handshake refused"));
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      // A fleet reconnecting at once overflows Node's default accept queue of 511 and the kernel
      // drops SYNs (clients retry 1, 3, 7, 15 s later). Asked for large: the kernel caps it at
      // net.core.somaxconn (4,096 by default), so raising that sysctl is all a big fleet needs.
      server.listen({ port: this.options.port, host: this.options.host, backlog: 65_535 }, () => resolve());
    });
    return (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    // Stop accepting first; the listener closes only once live connections end, and aedes ends them.
    const listenerClosed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    const aedes = this.aedes;
    if (aedes) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await listenerClosed;
    await this.presence.stop();
  }

  private presenceFailed(err: Error): void {
    this.logger.warn({ err: err.message }, "storing a device's presence failed");
  }

  /** Publishes from the cloud to a device topic at QoS 1 (cloud → device direction only). */
  publishToDevice(
    uuid: string,
    topic: string,
    payload: string | Buffer,
    options: { retain?: boolean } = {},
  ): Promise<void> {
    const aedes = this.aedes;
    if (!aedes) return Promise.reject(new Error("the broker is not running"));
    if (!mayDeliverToDevice(uuid, topic))
      return Promise.reject(new Error(`not a cloud-to-device topic of ${uuid}: ${topic}`));
    return new Promise((resolve, reject) =>
      aedes.publish(
        {
          cmd: "publish",
          topic,
          payload: typeof payload === "string" ? Buffer.from(payload) : payload,
          qos: 1,
          retain: options.retain ?? false,
          dup: false,
        },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }

  /** Publishes a device's desired config, retained on its `config/desired`, and remembers which version the store holds. */
  async publishDesiredConfig(uuid: string, message: DesiredConfigMessage): Promise<void> {
    await this.publishToDevice(uuid, deviceTopic(uuid, { kind: "config/desired" }), JSON.stringify(message), {
      retain: true,
    });
    this.retainedDesired.set(uuid, message.version);
  }

  /** Answers a device's clock-sync request with the cloud's time (the request was validated by ingest). */
  private answerTime(uuid: string, body: Buffer): void {
    let t0: unknown;
    try {
      t0 = (JSON.parse(body.toString("utf8")) as { t0?: unknown }).t0;
    } catch {
      return;
    }
    if (typeof t0 !== "number") return;
    const answer = JSON.stringify({ v: 1, t0, serverTs: Date.now() });
    this.publishToDevice(uuid, deviceTopic(uuid, { kind: "commands", commandId: "time" }), answer).catch((err: Error) =>
      this.logger.debug({ uuid, err: err.message }, "answering a clock-sync request failed"),
    );
  }

  /** Drops the live session of a device whose certificate was revoked. */
  dropSession(uuid: string, reason: string): void {
    const client = this.clients()[uuid];
    if (!client) return;
    this.logger.info({ uuid, reason }, "dropping mqtt session of a revoked certificate");
    this.presence.markReason(client, "revoked");
    client.close();
  }

  private refuseOversize(client: Client, announced: number): void {
    const max = this.options.limits.maxPacketSize;
    const session = this.sessions.get(client);
    const message = `connection closed: a packet announced ${announced} bytes; the limit is ${max} (--mqtt-max-packet-size)`;
    this.logger.warn(
      { uuid: session?.uuid, announced, max },
      "mqtt packet over the size limit; closing the connection",
    );
    if (!session) return;
    this.presence.markReason(client, "packet-too-large");
    this.noteEvent(this.events.record(session.deviceId, "MQTT_PACKET_TOO_LARGE", "warning", message));
  }

  /** A refusal is answered at once; its event is stored meanwhile, and a failure to store it only logged. */
  private noteEvent(recorded: Promise<void>): void {
    recorded.catch((err: Error) => this.logger.warn({ err: err.message }, "recording a device event failed"));
  }

  private clients(): Record<string, Client> {
    // aedes keeps live clients by id; the map is not in its type declarations.
    return (this.aedes as unknown as { clients: Record<string, Client> }).clients;
  }

  private authenticate(client: Client, done: (err: AuthenticateError | null, ok: boolean | null) => void): void {
    this.authenticateDevice(client, done).catch((err: Error) => {
      this.logger.warn({ clientId: client.id, err: err.message }, "mqtt authentication failed");
      const refusal = new FieldgateError("INTERNAL", "authentication failed") as unknown as AuthenticateError;
      refusal.returnCode = NOT_AUTHORIZED;
      done(refusal, false);
    });
  }

  private async authenticateDevice(
    client: Client,
    done: (err: AuthenticateError | null, ok: boolean | null) => void,
  ): Promise<void> {
    const refuse = (code: ErrorCode, detail: string) => {
      this.logger.info({ clientId: client.id, code, detail }, "mqtt connection refused");
      const err = new FieldgateError(code, detail) as unknown as AuthenticateError;
      err.returnCode = NOT_AUTHORIZED;
      done(err, false);
    };
    const socket = client.conn as TLSSocket;
    if (typeof socket.getPeerCertificate !== "function" || !socket.authorized) {
      refuse("CERT_UNKNOWN", "no verified client certificate");
      return;
    }
    const peer = socket.getPeerCertificate();
    const cn = typeof peer.subject?.CN === "string" ? peer.subject.CN : "";
    const device = await this.registry.findByUuid(cn);
    if (!device) {
      refuse("CERT_UNKNOWN", "certificate names no registered device");
      return;
    }
    const current = await this.registry.currentCertificate(device.id);
    if (!current || current.serial !== peer.serialNumber.toUpperCase()) {
      this.noteEvent(
        this.events.record(
          device.id,
          "CERT_REVOKED",
          "warning",
          "connection refused: certificate revoked or superseded",
        ),
      );
      refuse("CERT_REVOKED", "certificate is revoked or superseded");
      return;
    }
    if (client.id !== device.uuid) {
      this.noteEvent(
        this.events.record(
          device.id,
          "CLIENT_ID_MISMATCH",
          "warning",
          "connection refused: client id differs from the certificate's uuid",
        ),
      );
      refuse("CLIENT_ID_MISMATCH", "client id differs from the certificate's uuid");
      return;
    }
    this.sessions.set(client, { deviceId: device.id, uuid: device.uuid, serial: current.serial });
    this.pending.settle(socket);
    // aedes keeps retained messages in memory only: after a cloud restart the database is the
    // truth, and the desired config goes back into the retained store — before the CONNACK, so the
    // device cannot have subscribed yet and gets it once, as the retained copy. Published after
    // the CONNACK, it raced the subscription and could arrive twice (live and retained).
    Promise.resolve(this.options.desiredConfig?.(device.id))
      .then((desired) => {
        if (!desired || this.retainedDesired.get(device.uuid) === desired.version) return;
        return this.publishDesiredConfig(device.uuid, desired);
      })
      .catch((err: Error) =>
        this.logger.warn({ uuid: device.uuid, err: err.message }, "re-publishing the desired config failed"),
      )
      .finally(() => done(null, true));
  }

  private authorizePublish(
    client: Client | null,
    topic: string,
    payload: Buffer | string,
    done: (err?: Error | null) => void,
  ): void {
    // A null client is aedes re-publishing a will after a restart; there is none here (memory persistence).
    const session = client ? this.sessions.get(client) : undefined;
    if (!session) {
      done(new FieldgateError("CERT_UNKNOWN", "no authenticated session"));
      return;
    }
    const decision = authorizeDevicePublish(session.uuid, topic);
    if (!decision.allowed) {
      this.noteEvent(
        this.events.record(session.deviceId, decision.code, "warning", `publish refused: ${decision.reason}`, {
          topic,
        }),
      );
      done(new FieldgateError(decision.code, decision.reason));
      return;
    }
    // aedes writes the QoS 1 PUBACK after this hook but before `published` runs
    // (lib/handlers/publish.js), so storing here is what makes a PUBACK mean "stored".
    const body = typeof payload === "string" ? Buffer.from(payload) : payload;
    this.ingest.handle(session, topic, body).then(
      async (refused) => {
        // The notice goes out before the PUBACK (same socket, in order), so the device learns of
        // the refusal before it would delete the batch.
        if (refused) await this.noticeRefused(session.uuid, refused);
        done(null);
        if (parseDeviceTopic(topic)?.topic.kind === "time") this.answerTime(session.uuid, body);
      },
      (err: Error) => {
        this.logger.error(
          { uuid: session.uuid, err: err.message },
          "ingest failed transiently; withholding PUBACK (the message is refused after repeated failures)",
        );
        done(err);
      },
    );
  }

  private async noticeRefused(uuid: string, notice: TelemetryRefused): Promise<void> {
    try {
      await this.publishToDevice(uuid, deviceTopic(uuid, { kind: "telemetry/refused" }), JSON.stringify(notice));
    } catch (err) {
      this.logger.warn({ uuid, seq: notice.seq, err: (err as Error).message }, "telling a device of a refusal failed");
    }
  }

  private authorizeSubscribe(
    client: Client,
    sub: Subscription,
    done: (err: Error | null, sub?: Subscription | null) => void,
  ): void {
    const session = this.sessions.get(client);
    const decision = session ? authorizeDeviceSubscribe(session.uuid, sub.topic) : undefined;
    if (!session || !decision?.allowed) {
      if (session && decision && !decision.allowed) {
        this.noteEvent(
          this.events.record(session.deviceId, decision.code, "warning", `subscribe refused: ${decision.reason}`, {
            topic: sub.topic,
          }),
        );
      }
      // A refused filter gets SUBACK 0x80 [MQTT-3.9.3-2]; the connection stays up.
      done(null, null);
      return;
    }
    const held = (client as unknown as { subscriptions: Record<string, unknown> }).subscriptions;
    if (!(sub.topic in held) && Object.keys(held).length >= MAX_SUBSCRIPTIONS_PER_CLIENT) {
      this.logger.warn({ uuid: session.uuid, max: MAX_SUBSCRIPTIONS_PER_CLIENT }, "subscription refused: too many");
      done(null, null);
      return;
    }
    done(null, sub);
  }
}
