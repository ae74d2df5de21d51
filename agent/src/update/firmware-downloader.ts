import { closeSync, fsyncSync, mkdirSync, openSync, rmSync, statSync, truncateSync, writevSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { FieldgateError, SchemaValidator, SignedManifest } from "@fieldgate/shared";
import { apiUrl, type HttpsTrust } from "../transport/https-json.js";
import { type BucketClock, realClock, TokenBucket } from "./token-bucket.js";

/** Where and how to reach the cloud: its API URL and the device's mTLS material. */
export interface DownloadEndpoint {
  apiUrl: string;
  trust: Required<HttpsTrust>;
  timeoutMs?: number;
}

/** How an image download behaves; every field is optional. */
export interface DownloadOptions {
  /** Bytes per second (`updates.downloadRateLimit`); absent means unlimited. */
  rateLimit?: number;
  /** How often a dropped or failed connection is retried (with Range) within one `download`; default 0. */
  retries?: number;
  /** The first retry's delay; it doubles with each retry, up to 30 s. Default 1 s. */
  retryDelayMs?: number;
  /** Time for the rate limit and the retry delays; tests inject a fake one. */
  clock?: BucketClock;
  /** Told about each retry, for the log. */
  onRetry?: (info: { attempt: number; have: number; delayMs: number; error: Error }) => void;
}

const MAX_RETRY_DELAY_MS = 30_000;

/**
 * Fetches manifests and images over mTLS. Images go to `<dataDir>/staging/<sha256>.part` and
 * resume with HTTP Range after a dropped connection; nothing is written outside `staging/`, and
 * never more than the manifest's size: extra bytes abort the download. With a rate limit, every
 * chunk passes one token bucket per `download` call, so the limit also holds across resumes.
 */
export class FirmwareDownloader {
  private readonly validator = new SchemaValidator();
  readonly stagingDir: string;

  constructor(
    dataDir: string,
    private readonly endpoint: DownloadEndpoint,
    private readonly options: DownloadOptions = {},
  ) {
    this.stagingDir = join(dataDir, "staging");
  }

  /** The signed manifest, validated against the schema (its signature is checked before install). */
  async manifest(name: string, version: string): Promise<SignedManifest> {
    const { status, body } = await this.get(`${imagePath(name, version)}/manifest`);
    if (status !== 200) throw codedAnswer(status, body);
    return this.validator.parse(SignedManifest, JSON.parse(body.toString("utf8")), "manifest");
  }

  /** The cloud's trusted firmware keys, unchecked JSON: `FirmwareKeyStore.replace` validates them. */
  async trustedKeys(): Promise<unknown> {
    const { status, body } = await this.get("/api/v1/firmware-keys");
    if (status !== 200) throw codedAnswer(status, body);
    return JSON.parse(body.toString("utf8"));
  }

  /** The staging file an image downloads to: named by its sha256, so one image has one file. */
  partPath(signed: SignedManifest): string {
    // The schema already requires 64 hex digits; checked again because the name becomes a path.
    if (!/^[0-9a-f]{64}$/.test(signed.manifest.sha256)) throw new FieldgateError("VALIDATION_FAILED", "bad sha256");
    return join(this.stagingDir, `${signed.manifest.sha256}.part`);
  }

  /**
   * Downloads (or finishes downloading) the image; returns the staging file, exactly `size` bytes
   * long. An unreachable cloud or a dropped connection is retried (`retries`), resuming with Range;
   * any other error is final.
   */
  async download(signed: SignedManifest): Promise<string> {
    const { rateLimit, retries = 0, retryDelayMs = 1000, onRetry } = this.options;
    const clock = this.options.clock ?? realClock;
    const bucket = rateLimit === undefined ? undefined : new TokenBucket(rateLimit, { clock });
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.attempt(signed, bucket);
      } catch (err) {
        if (!(err instanceof FieldgateError) || err.code !== "CLOUD_UNREACHABLE" || attempt > retries) throw err;
        const delayMs = Math.min(MAX_RETRY_DELAY_MS, retryDelayMs * 2 ** (attempt - 1));
        onRetry?.({ attempt, have: existsSize(this.partPath(signed)), delayMs, error: err });
        await clock.sleep(delayMs);
      }
    }
  }

  private async attempt(signed: SignedManifest, bucket: TokenBucket | undefined): Promise<string> {
    const { name, version, size } = signed.manifest;
    mkdirSync(this.stagingDir, { recursive: true, mode: 0o700 });
    const part = this.partPath(signed);
    let have = existsSize(part);
    if (have > size) {
      rmSync(part, { force: true });
      have = 0;
    }
    if (have === size) return part;
    const url = apiUrl(this.endpoint.apiUrl, `${imagePath(name, version)}/image`);
    await new Promise<void>((resolve, reject) => {
      const req = request(
        url,
        {
          method: "GET",
          headers: have > 0 ? { range: `bytes=${have}-` } : {},
          ca: this.endpoint.trust.ca,
          key: this.endpoint.trust.key,
          cert: this.endpoint.trust.cert,
          timeout: this.endpoint.timeoutMs ?? 30_000,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          let offset: number;
          if (status === 206 && contentRangeStart(res.headers["content-range"]) === have) offset = have;
          else if (status === 200) offset = 0;
          else {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => reject(codedAnswer(status, Buffer.concat(chunks))));
            return;
          }
          const fd = openSync(part, offset === 0 ? "w" : "r+", 0o600);
          let position = offset;
          let done = false;
          // With a rate limit each chunk waits for its tokens with the response paused; `end`
          // waits for the chunks still queued here.
          let queued: Promise<void> = Promise.resolve();
          // Received bytes are gathered and written in runs of WRITE_RUN_BYTES: one write per TLS
          // record (16 KiB) cost a quarter of a busy downloader's time. What is gathered is
          // written before the file is closed, whatever ends the transfer, so a resume loses nothing.
          // A rate-limited download is slow anyway: it writes each chunk as it is let through.
          const runBytes = bucket ? 1 : WRITE_RUN_BYTES;
          let pending: Buffer[] = [];
          let pendingBytes = 0;
          let written = offset;
          const flush = () => {
            if (pendingBytes === 0) return;
            const run = pending;
            const runLength = pendingBytes;
            pending = [];
            pendingBytes = 0;
            // writev may write less than asked (a signal, a full disk): write the rest until done.
            let wrote = 0;
            while (wrote < runLength) {
              const rest = wrote === 0 ? run : remainder(run, wrote);
              wrote += writevSync(fd, rest, written + wrote);
            }
            written += runLength;
          };
          const finish = (err?: Error) => {
            if (done) return;
            done = true;
            let failure = err;
            try {
              flush();
              fsyncSync(fd);
            } catch (writeErr) {
              failure ??= stagingWriteFailed(part, writeErr as NodeJS.ErrnoException);
            } finally {
              closeSync(fd);
            }
            if (failure) reject(failure);
            else resolve();
          };
          const write = (chunk: Buffer) => {
            if (done) return;
            const room = size - position;
            const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
            if (kept.length > 0) {
              pending.push(kept);
              pendingBytes += kept.length;
            }
            position += kept.length;
            if (pendingBytes >= runBytes) {
              try {
                flush();
              } catch (err) {
                req.destroy();
                finish(stagingWriteFailed(part, err as NodeJS.ErrnoException));
                return;
              }
            }
            if (chunk.length > room) {
              // The manifest's size is the contract: stop reading at it, keep nothing beyond it.
              req.destroy();
              finish(
                new FieldgateError(
                  "FIRMWARE_SIZE_MISMATCH",
                  `the cloud sent more than the manifest's ${size} bytes; the download was stopped`,
                ),
              );
            }
          };
          res.on("data", (chunk: Buffer) => {
            if (done) return;
            if (!bucket) {
              write(chunk);
              return;
            }
            res.pause();
            queued = queued
              .then(() => bucket.take(chunk.length))
              .then(() => {
                write(chunk);
                if (!done) res.resume();
              });
          });
          res.on("aborted", () => finish(unreachable(url, new Error(`connection dropped at byte ${position}`))));
          res.on("error", (err) => finish(unreachable(url, err)));
          res.on("end", () => {
            void queued.then(() => {
              if (position < size) finish(unreachable(url, new Error(`connection ended at byte ${position}`)));
              else finish();
            });
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("no data in time")));
      req.on("error", (err) => reject(unreachable(url, err)));
      req.end();
    });
    truncateSync(part, Math.min(existsSize(part), size));
    return part;
  }

  private get(path: string): Promise<{ status: number; body: Buffer }> {
    const url = apiUrl(this.endpoint.apiUrl, path);
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        { method: "GET", ...this.endpoint.trust, timeout: this.endpoint.timeoutMs ?? 30_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
          res.on("error", (err) => reject(unreachable(url, err)));
        },
      );
      req.on("timeout", () => req.destroy(new Error("no answer in time")));
      req.on("error", (err) => reject(unreachable(url, err)));
      req.end();
    });
  }
}

/** Bytes gathered before one write to the staging file. */
const WRITE_RUN_BYTES = 1024 * 1024;

function imagePath(name: string, version: string): string {
  return `/api/v1/firmware/${encodeURIComponent(name)}/${encodeURIComponent(version)}`;
}

function existsSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function contentRangeStart(header: string | undefined): number | undefined {
  const m = /^bytes (\d+)-\d+\/\d+$/.exec(header ?? "");
  return m ? Number(m[1]) : undefined;
}

function codedAnswer(status: number, body: Buffer): FieldgateError {
  let error: { code?: string; message?: string } | undefined;
  try {
    error = (JSON.parse(body.toString("utf8")) as { error?: { code?: string; message?: string } }).error;
  } catch {
    error = undefined;
  }
  // Final answers: retrying cannot help (a corrupt stored image fails the job on the cloud side too).
  if (error?.code === "FIRMWARE_NOT_FOUND" || error?.code === "FIRMWARE_IMAGE_CORRUPT")
    return new FieldgateError(error.code, error.message);
  if (error?.code === "CERT_REVOKED" || error?.code === "CERT_UNKNOWN" || error?.code === "CERT_EXPIRED")
    return new FieldgateError(error.code, error.message);
  return new FieldgateError("CLOUD_UNREACHABLE", `the cloud answered ${status}: ${error?.message ?? "no details"}`);
}

/** The buffers of `run` past its first `skip` bytes. */
function remainder(run: Buffer[], skip: number): Buffer[] {
  const rest: Buffer[] = [];
  let left = skip;
  for (const b of run) {
    if (left >= b.length) left -= b.length;
    else {
      rest.push(left > 0 ? b.subarray(left) : b);
      left = 0;
    }
  }
  return rest;
}

function stagingWriteFailed(part: string, err: NodeJS.ErrnoException): FieldgateError {
  if (err.code === "ENOSPC")
    return new FieldgateError("DISK_FULL", `the staging file ${part} could not grow: disk full`);
  return new FieldgateError("INTERNAL", `writing the staging file ${part}: ${err.message}`);
}

function unreachable(url: URL, err: Error): FieldgateError {
  return new FieldgateError("CLOUD_UNREACHABLE", `firmware download from ${url.origin}: ${err.message}`);
}
