import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { SignedManifest } from "@fieldgate/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import { type EnrolledDevice, enrollWithToken, registerDevice } from "../../../test/support/device-identity.js";
import { FirmwareDownloader } from "../../src/update/firmware-downloader.js";
import { verifyBeforeInstall } from "../../src/update/verify-before-install.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";

const image = randomBytes(300_000);
const sha256 = createHash("sha256").update(image).digest("hex");

describe("FirmwareDownloader against a real cloud", () => {
  let cloud: CloudProcess;
  let device: EnrolledDevice;
  let publicPem: string;
  let signed: SignedManifest;

  beforeAll(async () => {
    const dataDir = tempDir("dl-cloud");
    const keygen = execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir, "--json"], {
      encoding: "utf8",
    });
    publicPem = (JSON.parse(keygen) as { publicKeyPem: string }).publicKeyPem;
    cloud = await startCloud({ dataDir, args: ["--firmware-dir", path.join(dataDir, "store")] });
    await cloud.api("POST", "/api/v1/device-types", { name: "gw-a" });
    const imageFile = path.join(dataDir, "image.bin");
    fs.writeFileSync(imageFile, image);
    execFileSync(process.execPath, [
      cloudBin,
      "firmware",
      "upload",
      imageFile,
      ...["--name", "gw-os", "--version", "2.0.0", "--compatible", "gw-a", "--data-dir", dataDir],
    ]);
    const reg = await registerDevice(cloud, { type: "gw-a" });
    device = await enrollWithToken(cloud, reg.uuid, reg.token);
  });
  afterAll(() => cloud?.stop());

  const downloader = (dataDir: string) =>
    new FirmwareDownloader(dataDir, {
      apiUrl: cloud.url,
      trust: { ca: cloud.caPem, key: device.keyPem, cert: device.certPem },
    });

  it("fetches the manifest and the image into staging/, and the image verifies", async () => {
    const { dir, cleanup } = agentDir();
    try {
      const d = downloader(dir);
      signed = await d.manifest("gw-os", "2.0.0");
      const file = await d.download(signed);
      expect(file).toBe(path.join(dir, "staging", `${sha256}.part`));
      expect(fs.readFileSync(file).equals(image)).toBe(true);
      await verifyBeforeInstall({
        signed,
        imagePath: file,
        publicKeys: [publicPem],
        deviceFirmwareCompat: "gw-a",
        installedVersion: "1.0.0",
        agentVersion: "0.1.0",
      });
    } finally {
      cleanup();
    }
  });

  it("resumes from a partial file with Range instead of starting over", async () => {
    const { dir, cleanup } = agentDir();
    try {
      const d = downloader(dir);
      fs.mkdirSync(d.stagingDir, { recursive: true });
      // Zeros where the first half was: a resumed download keeps them, a restart would not.
      const half = image.length / 2;
      fs.writeFileSync(d.partPath(signed), Buffer.alloc(half));
      const file = await d.download(signed);
      const got = fs.readFileSync(file);
      expect(got.length).toBe(image.length);
      expect(got.subarray(0, half).equals(Buffer.alloc(half))).toBe(true);
      expect(got.subarray(half).equals(image.subarray(half))).toBe(true);
      // With the real first half, the resumed file is the image.
      fs.writeFileSync(d.partPath(signed), image.subarray(0, half));
      expect(fs.readFileSync(await d.download(signed)).equals(image)).toBe(true);
    } finally {
      cleanup();
    }
  });
});

describe("FirmwareDownloader against a misbehaving server", () => {
  let pki: TestPki;
  let server: https.Server;
  let mode: "extra" | "drop" | "honest" = "honest";
  const ranges: (string | undefined)[] = [];
  const manifest: SignedManifest = {
    manifest: {
      v: 1,
      name: "gw-os",
      version: "2.0.0",
      compatible: ["gw-a"],
      size: image.length,
      sha256,
      created: "2026-01-01T00:00:00.000Z",
    },
    signature: "AAAA",
    keyId: "0".repeat(16),
  };

  beforeAll(async () => {
    pki = await createTestPki();
    server = https.createServer({ key: pki.server.keyPem, cert: pki.server.certPem }, (req, res) => {
      ranges.push(req.headers.range);
      if (mode === "extra") {
        const body = Buffer.concat([image, Buffer.from("one byte too many")]);
        res.writeHead(200, { "content-length": body.length });
        res.end(body);
      } else if (mode === "drop") {
        res.writeHead(200, { "content-length": image.length });
        res.write(image.subarray(0, 100_000), () => res.socket?.destroy());
      } else {
        const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? "")?.[1] ?? 0);
        res.writeHead(start ? 206 : 200, {
          "content-length": image.length - start,
          ...(start && { "content-range": `bytes ${start}-${image.length - 1}/${image.length}` }),
        });
        res.end(image.subarray(start));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const downloader = async (dir: string) => {
    const client = await pki.issueClient("device");
    return new FirmwareDownloader(dir, {
      apiUrl: `https://localhost:${(server.address() as AddressInfo).port}`,
      trust: { ca: pki.caPem, key: client.keyPem, cert: client.certPem },
    });
  };

  it("aborts at the declared size when the server sends more, keeping no byte beyond it", async () => {
    const { dir, cleanup } = agentDir();
    try {
      mode = "extra";
      const d = await downloader(dir);
      await expect(d.download(manifest)).rejects.toMatchObject({ code: "FIRMWARE_SIZE_MISMATCH" });
      expect(fs.statSync(d.partPath(manifest)).size).toBe(image.length);
      expect(fs.readdirSync(dir)).toEqual(["staging"]);
    } finally {
      cleanup();
    }
  });

  it("keeps the part after a dropped connection and resumes with Range", async () => {
    const { dir, cleanup } = agentDir();
    try {
      mode = "drop";
      ranges.length = 0;
      const d = await downloader(dir);
      await expect(d.download(manifest)).rejects.toMatchObject({ code: "CLOUD_UNREACHABLE" });
      const kept = fs.statSync(d.partPath(manifest)).size;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(image.length);
      mode = "honest";
      const file = await d.download(manifest);
      expect(ranges.at(-1)).toBe(`bytes=${kept}-`);
      expect(fs.readFileSync(file).equals(image)).toBe(true);
    } finally {
      cleanup();
    }
  });
});

describe("FirmwareDownloader rate limit across a Range resume", () => {
  let pki: TestPki;
  let server: https.Server;
  let requests = 0;
  const ranges: (string | undefined)[] = [];
  const manifest: SignedManifest = {
    manifest: {
      v: 1,
      name: "gw-os",
      version: "2.0.0",
      compatible: ["gw-a"],
      size: image.length,
      sha256,
      created: "2026-01-01T00:00:00.000Z",
    },
    signature: "AAAA",
    keyId: "0".repeat(16),
  };

  beforeAll(async () => {
    pki = await createTestPki();
    // The first request is cut after 100 000 bytes; later ones honour Range.
    server = https.createServer({ key: pki.server.keyPem, cert: pki.server.certPem }, (req, res) => {
      requests += 1;
      ranges.push(req.headers.range);
      if (requests === 1) {
        res.writeHead(200, { "content-length": image.length });
        res.write(image.subarray(0, 100_000), () => res.socket?.destroy());
        return;
      }
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? "")?.[1] ?? 0);
      res.writeHead(start ? 206 : 200, {
        "content-length": image.length - start,
        ...(start && { "content-range": `bytes ${start}-${image.length - 1}/${image.length}` }),
      });
      res.end(image.subarray(start));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("never lets more than burst + rate × elapsed through, before and after the resume", async () => {
    const { dir, cleanup } = agentDir();
    try {
      const client = await pki.issueClient("device");
      // A virtual clock: each wait of the bucket advances it at once, and samples the part file,
      // whose length is every byte that passed, the first attempt's included.
      let now = 0;
      const samples: { at: number; bytes: number }[] = [];
      const retries: number[] = [];
      let part = "";
      const clock = {
        now: () => now,
        sleep: async (ms: number) => {
          samples.push({ at: now, bytes: fs.existsSync(part) ? fs.statSync(part).size : 0 });
          now += ms;
          await new Promise((r) => setImmediate(r));
        },
      };
      const rate = 100_000;
      const d = new FirmwareDownloader(
        dir,
        {
          apiUrl: `https://localhost:${(server.address() as AddressInfo).port}`,
          trust: { ca: pki.caPem, key: client.keyPem, cert: client.certPem },
        },
        { rateLimit: rate, retries: 2, retryDelayMs: 0, clock, onRetry: ({ have }) => retries.push(have) },
      );
      part = d.partPath(manifest);
      const file = await d.download(manifest);
      expect(fs.readFileSync(file).equals(image)).toBe(true);
      // It was cut once and resumed where it stopped, not from the start.
      expect(retries).toHaveLength(1);
      expect(ranges).toEqual([undefined, `bytes=${retries[0]}-`]);
      const burst = Math.max(16 * 1024, rate / 4);
      const chunk = 64 * 1024;
      for (const s of samples) expect(s.bytes).toBeLessThanOrEqual(burst + (rate * s.at) / 1000 + chunk);
      // 300 000 bytes at 100 000 B/s: close to 2.75 s of waiting (the burst passes at once).
      expect(now).toBeGreaterThanOrEqual(((image.length - burst - chunk) * 1000) / rate);
      expect(now).toBeLessThan(((image.length + chunk) * 1000) / rate);
    } finally {
      cleanup();
    }
  });
});

function agentDir() {
  const dir = tempDir("dl-agent");
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
