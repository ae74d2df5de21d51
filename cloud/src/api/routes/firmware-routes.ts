import fs from "node:fs";
import { pipeline, type Readable, Transform } from "node:stream";
import {
  ErrorResponse,
  FIRMWARE_COMPAT_PATTERN,
  FieldgateError,
  FirmwareName,
  FirmwareTrustedKeys,
  SemverString,
  SignedManifest,
} from "@fieldgate/shared";
import { type Static, Type } from "@sinclair/typebox";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { FirmwareRecord } from "../../firmware/firmware-record.js";
import type { DeviceRow } from "../../registry/device-registry.js";
import { errorResponses, principalOf, type RouteContext } from "./route-context.js";

const errors = { ...errorResponses, 413: ErrorResponse };
const compatList = FIRMWARE_COMPAT_PATTERN.slice(1, -1);

const UploadQuery = Type.Object(
  {
    name: FirmwareName,
    version: SemverString,
    compatible: Type.String({ pattern: `^${compatList}(,${compatList})*$`, description: "device type ids, a,b" }),
    minAgentVersion: Type.Optional(SemverString),
  },
  { additionalProperties: false },
);
type UploadQuery = Static<typeof UploadQuery>;

const ImageParams = Type.Object({ name: FirmwareName, version: SemverString });
const ImageBytes = Type.String({ format: "binary", description: "the image file, as stored" });
type ImageParams = Static<typeof ImageParams>;

const FirmwareImage = Type.Object({
  name: Type.String(),
  version: Type.String(),
  compatible: Type.Array(Type.String()),
  size: Type.Integer(),
  sha256: Type.String(),
  minAgentVersion: Type.Optional(Type.String()),
  keyId: Type.String(),
  created: Type.String(),
  inUse: Type.Boolean(),
});

/** Header carrying an offline-signed manifest (base64 of its JSON) with an upload. */
export const SIGNED_MANIFEST_HEADER = "x-fieldgate-signed-manifest";

/** Firmware images: operators upload, list, show and delete; devices fetch manifests and images over mTLS. */
export function registerFirmwareRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { firmware } = ctx;
  const view = async (r: FirmwareRecord) => ({
    name: r.name,
    version: r.version,
    compatible: r.compatible,
    size: r.size,
    sha256: r.sha256,
    ...(r.minAgentVersion !== undefined && { minAgentVersion: r.minAgentVersion }),
    keyId: r.keyId,
    created: new Date(r.createdAt).toISOString(),
    inUse: await firmware.inUse(r),
  });

  // Encapsulated so the raw-stream parser applies to the upload only: the image goes to disk as it
  // arrives and is never held in memory.
  void app.register(async (scope) => {
    scope.addContentTypeParser("application/octet-stream", (_request, payload, done) => done(null, payload));
    scope.post<{ Querystring: UploadQuery }>(
      "/api/v1/firmware",
      {
        bodyLimit: firmware.maxSize,
        schema: {
          tags: ["firmware"],
          summary: "Upload an image (raw bytes, application/octet-stream); the cloud writes and signs its manifest",

          querystring: UploadQuery,
          response: { 201: FirmwareImage, ...errors },
        },
      },
      async (request, reply) => {
        const principal = principalOf(request);
        const q = request.query;
        const length = request.headers["content-length"];
        const record = await firmware.add(
          principal.orgId,
          {
            name: q.name,
            version: q.version,
            compatible: q.compatible.split(","),
            minAgentVersion: q.minAgentVersion,
            declaredSize: length === undefined ? undefined : Number(length),
            offlineSigned: offlineSignature(request),
          },
          request.body as Readable,
        );
        request.log.info({ name: record.name, version: record.version, size: record.size }, "firmware uploaded");
        return reply.status(201).send(await view(record));
      },
    );
  });

  app.get(
    "/api/v1/firmware",
    {
      schema: {
        tags: ["firmware"],

        response: { 200: Type.Object({ items: Type.Array(FirmwareImage) }), ...errors },
      },
    },
    async (request) => ({ items: await Promise.all(firmware.list(principalOf(request).orgId).map(view)) }),
  );

  app.get<{ Params: ImageParams }>(
    "/api/v1/firmware/:name/:version",
    {
      schema: {
        tags: ["firmware"],
        summary: "An image's signed manifest",

        params: ImageParams,
        response: { 200: Type.Object({ image: FirmwareImage, signed: SignedManifest }), ...errors },
      },
    },
    async (request) => {
      const record = firmware.get(principalOf(request).orgId, request.params.name, request.params.version);
      return { image: await view(record), signed: firmware.signed(record) };
    },
  );

  app.delete<{ Params: ImageParams }>(
    "/api/v1/firmware/:name/:version",
    {
      schema: {
        tags: ["firmware"],
        summary: "Delete an image no active rollout uses",

        params: ImageParams,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      await firmware.delete(principalOf(request).orgId, request.params.name, request.params.version);
      request.log.info({ name: request.params.name, version: request.params.version }, "firmware deleted");
      return reply.status(204).send();
    },
  );

  app.get<{ Params: ImageParams }>(
    "/api/v1/firmware/:name/:version/manifest",
    {
      schema: {
        tags: ["firmware"],
        summary: "For a device (mTLS): the signed manifest of an image made for its type",
        params: ImageParams,
        response: { 200: SignedManifest, ...errors },
      },
    },
    async (request) =>
      firmware.signed(firmware.forDevice(deviceOf(request), request.params.name, request.params.version)),
  );

  app.get(
    "/api/v1/firmware-keys",
    {
      schema: {
        tags: ["firmware"],
        summary:
          "For a device (mTLS): the firmware public keys to trust, the signing key and those rotated out but not retired",
        response: { 200: FirmwareTrustedKeys, ...errors },
      },
    },
    async (request) => {
      deviceOf(request);
      return { v: 1, keys: firmware.trustedKeys() };
    },
  );

  app.get<{ Params: ImageParams }>(
    "/api/v1/firmware/:name/:version/image",
    {
      schema: {
        tags: ["firmware"],
        summary: "For a device (mTLS): the image bytes, with HTTP Range for resuming",
        params: ImageParams,
        // Streamed from disk: the schemas describe the bytes; a stream is never serialized with them.
        response: {
          200: {
            description: "the whole image",
            content: { "application/octet-stream": { schema: ImageBytes } },
          },
          206: {
            description: "the requested range of the image (Range: bytes=a-b)",
            content: { "application/octet-stream": { schema: ImageBytes } },
          },
          416: ErrorResponse,
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const device = deviceOf(request);
      const record = firmware.forDevice(device, request.params.name, request.params.version);
      const range = parseRange(request.headers.range, record.size);
      void reply.header("accept-ranges", "bytes").header("etag", `"${record.sha256}"`);
      if (range === "invalid") {
        void reply.header("content-range", `bytes */${record.size}`);
        throw new FieldgateError("FIRMWARE_RANGE_INVALID", `the image has ${record.size} bytes`, "range");
      }
      // Checked before the first byte (size, and the sha256 once per file version): a mismatch is a
      // clean coded answer, never a Content-Length the body does not keep.
      const file = await firmware.checkedImage(record, device);
      void reply.type("application/octet-stream");
      const { start, end } = range ?? { start: 0, end: record.size - 1 };
      void reply.header("content-length", end - start + 1);
      if (range) void reply.header("content-range", `bytes ${start}-${end}/${record.size}`);
      const body = exactBytes(file, start, end, (sent) =>
        firmware.corrupt(
          record,
          device,
          `the stored file ended ${end - start + 1 - sent} bytes early while being sent`,
        ),
      );
      return reply.status(range ? 206 : 200).send(body);
    },
  );
}

/** Image bytes read per file read: 64 KiB (the default) made file reads a tenth of a fan-out;
 * a bigger read holds up to this much per transfer in memory. */
const IMAGE_READ_BYTES = 256 * 1024;

/**
 * Bytes start..end of the file, never more (a file grown since the check is cut at the manifest's
 * size); one that shrank while sent ends in an error, which aborts the response rather than leaving
 * the client waiting for bytes that never come.
 */
function exactBytes(file: string, start: number, end: number, onShort: (sent: number) => Error): Readable {
  const expected = end - start + 1;
  let sent = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      sent += chunk.length;
      done(null, chunk);
    },
    flush(done) {
      done(sent < expected ? onShort(sent) : null);
    },
  });
  if (expected === 0) {
    counter.end();
    return counter;
  }
  // pipeline destroys the counter (and so the response) when the file read fails.
  pipeline(fs.createReadStream(file, { start, end, highWaterMark: IMAGE_READ_BYTES }), counter, () => undefined);
  return counter;
}

function deviceOf(request: FastifyRequest): DeviceRow {
  // HEAD requests bypass the rights table's lookup, so the device is checked here too.
  const caller = request.deviceCertificate;
  if (!caller) throw new FieldgateError("CERT_UNKNOWN", "present the device certificate (mTLS)");
  return caller.device;
}

function offlineSignature(request: FastifyRequest): unknown {
  const header = request.headers[SIGNED_MANIFEST_HEADER];
  if (typeof header !== "string") return undefined;
  try {
    return JSON.parse(Buffer.from(header, "base64").toString("utf8"));
  } catch {
    throw new FieldgateError("VALIDATION_FAILED", "the signed manifest is not base64 JSON", "signature");
  }
}

/**
 * One `bytes=a-b`, `bytes=a-` or `bytes=-n` range (RFC 9110 §14.1.2); multiple ranges are not
 * served. Undefined means the whole image; "invalid" answers 416.
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | undefined | "invalid" {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return "invalid";
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return "invalid";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "invalid";
  return { start, end };
}
