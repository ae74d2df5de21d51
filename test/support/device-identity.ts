import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  sign,
  webcrypto,
} from "node:crypto";
import https from "node:https";
import { factoryProofMessage } from "@fieldgate/shared";
import mqtt, { type MqttClient } from "mqtt";
import * as x509 from "../../cloud/src/pki/x509.js";
import type { ApiAnswer, CloudProcess } from "./cloud-process.js";

// `never`: the provider type differs between the DOM lib (console tests) and Node's; webcrypto is both.
x509.cryptoProvider.set(webcrypto as never);

export interface DeviceKeys {
  keyPem: string;
  csrPem: string;
  csrSha256: string;
}

/** A fresh P-256 key and a CSR for it, asking for `subject` (the CA must ignore it). */
export async function makeCsr(subject = "CN=whatever-the-device-asks"): Promise<DeviceKeys> {
  const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  return csrFor(keys, `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64")}\n-----END PRIVATE KEY-----\n`, subject);
}

/** A new CSR for a key the device already has (PKCS#8 PEM), as a thief holding a stolen key would send. */
export async function makeCsrForKey(keyPem: string, subject = "CN=whatever-the-device-asks"): Promise<DeviceKeys> {
  const algorithm = { name: "ECDSA", namedCurve: "P-256" };
  const der = (type: "pkcs8" | "spki") =>
    (type === "pkcs8" ? createPrivateKey(keyPem) : createPublicKey(keyPem)).export({ type, format: "der" });
  const keys = {
    privateKey: await webcrypto.subtle.importKey("pkcs8", der("pkcs8"), algorithm, true, ["sign"]),
    publicKey: await webcrypto.subtle.importKey("spki", der("spki"), algorithm, true, ["verify"]),
  };
  return csrFor(keys, keyPem, subject);
}

async function csrFor(
  keys: { privateKey: webcrypto.CryptoKey; publicKey: webcrypto.CryptoKey },
  keyPem: string,
  subject: string,
): Promise<DeviceKeys> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject,
    keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]["keys"],
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
  });
  return {
    keyPem,
    csrPem: csr.toString("pem"),
    csrSha256: createHash("sha256").update(Buffer.from(csr.rawData)).digest("hex"),
  };
}

/** POST /api/v1/renew over mTLS with the device's current key and certificate, as the agent does. */
export function renewOverMtls(
  cloud: CloudProcess,
  device: { keyPem: string; certPem: string },
  csrPem: string,
): Promise<ApiAnswer<{ certificate: string; serial: string; error: { code: string; field?: string } }>> {
  const payload = Buffer.from(JSON.stringify({ v: 1, csr: csrPem }));
  return new Promise((resolve, reject) => {
    const req = https.request(
      new URL("/api/v1/renew", cloud.url),
      {
        method: "POST",
        ca: cloud.caPem,
        key: device.keyPem,
        cert: device.certPem,
        headers: { "content-type": "application/json", "content-length": payload.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || "null"), text });
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

export function newUuid(): string {
  return randomUUID();
}

export interface RegisteredDevice {
  uuid: string;
  token: string;
}

export async function registerDevice(
  cloud: CloudProcess,
  extra: Record<string, unknown> = {},
): Promise<RegisteredDevice> {
  const uuid = newUuid();
  const res = await cloud.api<{ enrollmentToken: string }>("POST", "/api/v1/devices", { uuid, ...extra });
  if (res.status !== 201) throw new Error(`register failed: ${res.status} ${res.text}`);
  return { uuid, token: res.body.enrollmentToken };
}

export interface EnrolledDevice {
  uuid: string;
  keyPem: string;
  certPem: string;
  serial: string;
}

export async function enrollWithToken(cloud: CloudProcess, uuid: string, token: string): Promise<EnrolledDevice> {
  const keys = await makeCsr();
  const res = await cloud.api<{ certificate: string; serial: string }>(
    "POST",
    "/api/v1/enroll",
    { v: 1, uuid, method: "token", token, csr: keys.csrPem },
    false,
  );
  if (res.status !== 200) throw new Error(`enroll failed: ${res.status} ${res.text}`);
  return { uuid, keyPem: keys.keyPem, certPem: res.body.certificate, serial: res.body.serial };
}

export async function registerAndEnroll(cloud: CloudProcess): Promise<EnrolledDevice> {
  const { uuid, token } = await registerDevice(cloud);
  return enrollWithToken(cloud, uuid, token);
}

/** A factory (birth) key pair as the device maker would provision it. */
export function factoryKeyPair(type: "ec" | "ed25519" = "ec") {
  const pair = type === "ec" ? generateKeyPairSync("ec", { namedCurve: "prime256v1" }) : generateKeyPairSync("ed25519");
  return {
    publicPem: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
    sign(message: string): string {
      const data = Buffer.from(message);
      return (type === "ec" ? sign("sha256", data, pair.privateKey) : sign(null, data, pair.privateKey)).toString(
        "base64",
      );
    },
  };
}

export function factoryProof(
  uuid: string,
  keys: DeviceKeys,
  signer: { sign(m: string): string },
  timestamp = Date.now(),
) {
  const nonce = randomBytes(16).toString("hex");
  return { timestamp, nonce, signature: signer.sign(factoryProofMessage(uuid, keys.csrSha256, timestamp, nonce)) };
}

/** Connects over mTLS; resolves on CONNACK or rejects with the refusal. */
export function connectDevice(
  cloud: CloudProcess,
  device: { keyPem: string; certPem: string },
  clientId: string,
  extra: mqtt.IClientOptions = {},
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(cloud.mqttUrl, {
      key: device.keyPem,
      cert: device.certPem,
      ca: cloud.caPem,
      clientId,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...extra,
    });
    client.once("connect", () => resolve(client));
    client.once("error", (err) => {
      client.end(true);
      reject(err);
    });
    client.once("close", () => reject(new Error("connection closed before CONNACK")));
  });
}
