import path from "node:path";
import Database from "better-sqlite3";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, eventually, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import { connectDevice, type EnrolledDevice, registerAndEnroll } from "../../../test/support/device-identity.js";

type ErrorAnswer = { error: { code: string; field?: string } };
type LogPage = { items: { id: number; ts: string; level: string; msg: string }[]; nextAfter: number };
type ConfigView = {
  version: number;
  desired: Record<string, unknown>;
  reported: Record<string, unknown> | null;
  state: string;
  inSync: boolean;
};

function publish(client: MqttClient, topic: string, payload: unknown): Promise<void> {
  return new Promise((resolve, reject) =>
    client.publish(topic, JSON.stringify(payload), { qos: 1 }, (err) => (err ? reject(err) : resolve())),
  );
}

describe("device logs API", () => {
  let cloud: CloudProcess;
  let device: EnrolledDevice;
  let client: MqttClient;
  const t0 = Date.now() - 60_000;
  const logsUrl = (q = "") => `/api/v1/devices/${device.uuid}/logs${q}`;

  beforeAll(async () => {
    cloud = await startCloud();
    device = await registerAndEnroll(cloud);
    client = await connectDevice(cloud, device, device.uuid);
    const levels = ["debug", "info", "warn", "error", "info", "debug"] as const;
    await publish(client, `fieldgate/v1/${device.uuid}/logs`, {
      v: 1,
      entries: levels.map((level, i) => ({ ts: t0 + i * 1000, level, msg: `line ${i}` })),
    });
  });
  afterAll(async () => {
    client?.end(true);
    await cloud.stop();
  });

  it("answers the newest lines first without a cursor, and nextAfter is the newest id", async () => {
    const page = await cloud.api<LogPage>("GET", logsUrl("?limit=3"));
    expect(page.status).toBe(200);
    expect(page.body.items.map((e) => e.msg)).toEqual(["line 5", "line 4", "line 3"]);
    expect(page.body.items[0]).toMatchObject({ level: "debug", ts: new Date(t0 + 5000).toISOString() });
    expect(page.body.nextAfter).toBe(page.body.items[0]?.id);
  });

  it("filters by at-least level and time, oldest first with since", async () => {
    const warn = await cloud.api<LogPage>("GET", logsUrl("?level=warn"));
    expect(warn.body.items.map((e) => e.msg).sort()).toEqual(["line 2", "line 3"]);
    const since = new Date(t0 + 1000).toISOString();
    const until = new Date(t0 + 4000).toISOString();
    const window = await cloud.api<LogPage>("GET", logsUrl(`?since=${since}&until=${until}`));
    expect(window.body.items.map((e) => e.msg)).toEqual(["line 1", "line 2", "line 3"]);
    const bad = await cloud.api<ErrorAnswer>("GET", logsUrl("?level=loud"));
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "level" });
    const reversed = await cloud.api<ErrorAnswer>("GET", logsUrl(`?since=${until}&until=${since}`));
    expect(reversed.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "since" });
  });

  it("pages with the after cursor without skipping or repeating a line", async () => {
    const seen: string[] = [];
    let after = 0;
    for (let i = 0; i < 10; i++) {
      const page = await cloud.api<LogPage>("GET", logsUrl(`?after=${after}&limit=4`));
      seen.push(...page.body.items.map((e) => e.msg));
      after = page.body.nextAfter;
      if (page.body.items.length === 0) break;
    }
    expect(seen).toEqual(["line 0", "line 1", "line 2", "line 3", "line 4", "line 5"]);
    await publish(client, `fieldgate/v1/${device.uuid}/logs`, {
      v: 1,
      entries: [{ ts: Date.now(), level: "info", msg: "new line" }],
    });
    const next = await cloud.api<LogPage>("GET", logsUrl(`?after=${after}`));
    expect(next.body.items.map((e) => e.msg)).toEqual(["new line"]);
  });
});

describe("device config API", () => {
  let cloud: CloudProcess;
  let device: EnrolledDevice;
  let client: MqttClient;
  const received: Record<string, unknown>[] = [];
  const configUrl = () => `/api/v1/devices/${device.uuid}/config`;

  beforeAll(async () => {
    cloud = await startCloud();
    device = await registerAndEnroll(cloud);
    client = await connectDevice(cloud, device, device.uuid);
    client.on("message", (_t, payload) => received.push(JSON.parse(payload.toString()) as Record<string, unknown>));
    await client.subscribeAsync(`fieldgate/v1/${device.uuid}/config/desired`, { qos: 1 });
  });
  afterAll(async () => {
    client?.end(true);
    await cloud.stop();
  });

  it("shows nothing desired at first", async () => {
    const view = await cloud.api<ConfigView>("GET", configUrl());
    expect(view.body).toMatchObject({ version: 0, desired: {}, reported: null, state: "none", inSync: true });
  });

  it("refuses a desired config that fails the schema, naming the field, and stores nothing", async () => {
    for (const [body, field] of [
      [{ logLevel: "loud" }, "logLevel"],
      [{ colour: "red" }, "colour"],
      [{ logForward: { level: "debug", extra: 1 } }, "logForward.extra"],
    ] as const) {
      const res = await cloud.api<ErrorAnswer>("PUT", configUrl(), body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toMatchObject({ code: "VALIDATION_FAILED", field });
    }
    expect((await cloud.api<ConfigView>("GET", configUrl())).body.version).toBe(0);
  });

  it("increments the version on each PUT, publishes it to the device, and shows the acknowledgement", async () => {
    const first = await cloud.api<ConfigView>("PUT", configUrl(), { logLevel: "debug" });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ version: 1, desired: { logLevel: "debug" }, state: "pending", inSync: false });
    const second = await cloud.api<ConfigView>("PUT", configUrl(), {
      logLevel: "warn",
      logForward: { level: "error" },
    });
    expect(second.body.version).toBe(2);
    await eventually(() => (received.some((m) => m.version === 2) ? true : undefined), 5000, "desired v2");
    expect(received.at(-1)).toEqual({ v: 1, version: 2, logLevel: "warn", logForward: { level: "error" } });

    await publish(client, `fieldgate/v1/${device.uuid}/config/reported`, {
      v: 1,
      ts: Date.now(),
      version: 2,
      logLevel: "warn",
      forwardLevel: "error",
    });
    const view = await cloud.api<ConfigView>("GET", configUrl());
    expect(view.body).toMatchObject({
      version: 2,
      state: "applied",
      inSync: true,
      reported: { version: 2, logLevel: "warn" },
    });

    await publish(client, `fieldgate/v1/${device.uuid}/config/reported`, {
      v: 1,
      ts: Date.now(),
      version: 2,
      rejectedVersion: 3,
      error: "VALIDATION_FAILED: nope",
    });
    await cloud.api("PUT", configUrl(), { logLevel: "info" });
    const rejected = await cloud.api<ConfigView>("GET", configUrl());
    expect(rejected.body).toMatchObject({ version: 3, state: "rejected", inSync: false });
  });

  it("sends the current desired config again when the device reconnects", async () => {
    client.end(true);
    received.length = 0;
    client = await connectDevice(cloud, device, device.uuid);
    client.on("message", (_t, payload) => received.push(JSON.parse(payload.toString()) as Record<string, unknown>));
    await client.subscribeAsync(`fieldgate/v1/${device.uuid}/config/desired`, { qos: 1 });
    await eventually(() => (received.some((m) => m.version === 3) ? true : undefined), 5000, "desired v3 again");
  });

  it("sends it once per connection to a device that keeps its session, as the agent does (clean: false)", async () => {
    client.end(true);
    const copies: number[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await connectDevice(cloud, device, device.uuid, { clean: false });
      const got: Record<string, unknown>[] = [];
      c.on("message", (_t, payload) => got.push(JSON.parse(payload.toString()) as Record<string, unknown>));
      await c.subscribeAsync(`fieldgate/v1/${device.uuid}/config/desired`, { qos: 1 });
      await eventually(() => (got.length > 0 ? true : undefined), 5000, "the desired config");
      await new Promise((r) => setTimeout(r, 500)); // room for a second copy, if one were coming
      copies.push(got.filter((m) => m.version === 3).length);
      if (i < 2) await c.endAsync();
      else client = c;
    }
    expect(copies).toEqual([1, 1, 1]);
  });
});

describe("the desired config after a cloud restart", () => {
  let cloud: CloudProcess | undefined;
  afterAll(() => cloud?.stop());

  it("reaches the device once when it reconnects: the database is the truth, not the broker's memory", async () => {
    const dataDir = tempDir("desired-restart");
    cloud = await startCloud({ dataDir });
    const device = await registerAndEnroll(cloud);
    const put = await cloud.api("PUT", `/api/v1/devices/${device.uuid}/config`, { logLevel: "debug" });
    expect(put.status).toBe(200);
    await cloud.stop();
    cloud = await startCloud({ dataDir });
    const c = await connectDevice(cloud, device, device.uuid, { clean: false });
    try {
      const got: Record<string, unknown>[] = [];
      c.on("message", (_t, payload) => got.push(JSON.parse(payload.toString()) as Record<string, unknown>));
      await c.subscribeAsync(`fieldgate/v1/${device.uuid}/config/desired`, { qos: 1 });
      await eventually(() => (got.length > 0 ? true : undefined), 5000, "the desired config");
      await new Promise((r) => setTimeout(r, 500));
      expect(got).toEqual([expect.objectContaining({ version: 1, logLevel: "debug" })]);
    } finally {
      c.end(true);
    }
  });
});

describe("a stored desired config that no longer fits the schema", () => {
  let cloud: CloudProcess | undefined;
  afterAll(() => cloud?.stop());

  it("is answered with DESIRED_CONFIG_STORED_INVALID naming the field, not a 500, until a new one is set", async () => {
    cloud = await startCloud();
    const device = await registerAndEnroll(cloud);
    const url = `/api/v1/devices/${device.uuid}/config`;
    expect((await cloud.api("PUT", url, { logLevel: "debug" })).status).toBe(200);
    // As another version of the cloud, or a hand edit, might have left it.
    const db = new Database(path.join(cloud.dataDir, "fieldgate.db"));
    db.prepare("UPDATE device_config SET desired_json = ?").run(JSON.stringify({ logLevel: 5 }));
    db.close();
    const broken = await cloud.api<{ error: { code: string; field: string; message: string } }>("GET", url);
    expect(broken.status).toBe(409);
    expect(broken.body.error).toMatchObject({ code: "DESIRED_CONFIG_STORED_INVALID", field: "desired.logLevel" });
    expect(broken.body.error.message).toContain("config set");
    const fixed = await cloud.api<{ version: number; desired: unknown }>("PUT", url, { logLevel: "info" });
    expect(fixed.status).toBe(200);
    expect(fixed.body).toMatchObject({ version: 2, desired: { logLevel: "info" } });
  });
});

describe("device log retention", () => {
  let cloud: CloudProcess;
  afterAll(() => cloud?.stop());

  it("purges lines older than --log-retention and keeps newer ones", async () => {
    cloud = await startCloud({ args: ["--log-retention", "20s"] });
    const device = await registerAndEnroll(cloud);
    const client = await connectDevice(cloud, device, device.uuid);
    try {
      await publish(client, `fieldgate/v1/${device.uuid}/logs`, {
        v: 1,
        entries: [
          { ts: Date.now() - 3_600_000, level: "info", msg: "an hour old" },
          { ts: Date.now(), level: "info", msg: "fresh" },
        ],
      });
      const url = `/api/v1/devices/${device.uuid}/logs`;
      // Purges run every tenth of the retention (2s here).
      await eventually(
        async () => {
          const page = await cloud.api<LogPage>("GET", url);
          return page.body.items.length === 1 ? page.body.items : undefined;
        },
        8000,
        "the old line to be purged",
      );
      const page = await cloud.api<LogPage>("GET", url);
      expect(page.body.items.map((e) => e.msg)).toEqual(["fresh"]);
      expect(cloud.logs.some((l) => l.includes("purged old device log entries"))).toBe(true);
    } finally {
      client.end(true);
    }
  });
});
