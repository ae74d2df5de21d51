import { execFileSync } from "node:child_process";
import type { IncomingHttpHeaders } from "node:http";
import https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, eventually, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import { connectDevice, enrollWithToken, newUuid } from "../../../test/support/device-identity.js";

type Err = { error: { code: string; message: string } };

interface LiveStream {
  status: number;
  headers: IncomingHttpHeaders;
  text: () => string;
  /** The `event:` / `data:` pairs received so far. */
  events: () => { event: string; data: Record<string, unknown> }[];
  ended: Promise<void>;
  close: () => void;
}

/** Opens `GET /api/v1/live` and reads it as it arrives. */
function openLive(cloud: CloudProcess, headers: Record<string, string>): Promise<LiveStream> {
  return new Promise((resolve, reject) => {
    const req = https.get(new URL("/api/v1/live", cloud.url), { ca: cloud.caPem, headers }, (res) => {
      let text = "";
      const ended = new Promise<void>((done) => {
        res.on("end", () => done());
        res.on("close", () => done());
      });
      res.on("data", (chunk: Buffer) => {
        text += chunk.toString("utf8");
      });
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        text: () => text,
        events: () =>
          text
            .split("\n\n")
            .map((block) => {
              const event = /^event: (.+)$/m.exec(block)?.[1];
              const data = /^data: (.+)$/m.exec(block)?.[1];
              return event && data ? { event, data: JSON.parse(data) as Record<string, unknown> } : undefined;
            })
            .filter((e) => e !== undefined),
        ended,
        close: () => req.destroy(),
      });
    });
    req.on("error", reject);
  });
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;

describe("GET /api/v1/live", () => {
  let cloud: CloudProcess;
  let admin: string;
  const open: LiveStream[] = [];
  const live = async (headers: Record<string, string>) => {
    const stream = await openLive(cloud, headers);
    open.push(stream);
    return stream;
  };
  const group = async (name: string) =>
    (await cloud.api<{ id: number }>("POST", "/api/v1/groups", { name: `${name}-${newUuid().slice(0, 6)}` })).body;
  const device = async (groupId: number) => {
    const uuid = newUuid();
    const made = await cloud.api<{ enrollmentToken: string }>("POST", "/api/v1/devices", { uuid, group: groupId });
    expect(made.status).toBe(201);
    return { uuid, token: made.body.enrollmentToken };
  };
  const viewerIn = async (groupId: number) => {
    const made = await cloud.api<{ credential: { id: string }; secret: string }>("POST", "/api/v1/credentials", {
      name: `viewer-${groupId}`,
      group: groupId,
      role: "viewer",
    });
    expect(made.status).toBe(201);
    return basic(made.body.credential.id, made.body.secret);
  };
  const eventsFor = (stream: LiveStream, uuid: string) =>
    stream.events().filter((e) => e.event === "device" && e.data.uuid === uuid);

  beforeAll(async () => {
    const dataDir = tempDir("live");
    execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir], { stdio: "pipe" });
    cloud = await startCloud({ dataDir, args: ["--firmware-dir", `${dataDir}/firmware`] });
    admin = basic(cloud.credential.id, cloud.credential.secret);
  });
  afterAll(async () => {
    for (const stream of open) stream.close();
    await cloud.stop();
  });

  it("streams a device's edit, enrollment and connection, with SSE headers", async () => {
    const g = await group("live");
    const { uuid, token } = await device(g.id);
    const stream = await live({ authorization: admin });
    expect(stream.status).toBe(200);
    expect(stream.headers["content-type"]).toBe("text/event-stream");
    expect(stream.headers["cache-control"]).toBe("no-cache");
    expect(stream.headers["x-accel-buffering"]).toBe("no");
    await eventually(() => (stream.text().startsWith("retry: 5000\n\n") ? true : undefined), 5000, "retry line");

    expect((await cloud.api("PATCH", `/api/v1/devices/${uuid}`, { name: "boiler" })).status).toBe(200);
    await eventually(() => (eventsFor(stream, uuid).length >= 1 ? true : undefined), 5000, "the edit's event");

    const enrolled = await enrollWithToken(cloud, uuid, token);
    await eventually(() => (eventsFor(stream, uuid).length >= 2 ? true : undefined), 5000, "the enrollment's event");
    const client = await connectDevice(cloud, enrolled, uuid);
    try {
      await eventually(() => (eventsFor(stream, uuid).length >= 3 ? true : undefined), 5000, "the connection's event");
    } finally {
      client.end(true);
    }
  });

  it("sends a credential scoped to another group nothing of a device outside it", async () => {
    const mine = await group("mine");
    const other = await group("other");
    const inside = await device(mine.id);
    const outside = await device(other.id);
    const scoped = await live({ authorization: await viewerIn(mine.id) });
    const whole = await live({ authorization: admin });
    expect(scoped.status).toBe(200);
    await cloud.api("PATCH", `/api/v1/devices/${outside.uuid}`, { name: "not yours" });
    await cloud.api("DELETE", `/api/v1/devices/${outside.uuid}`);
    await cloud.api("PATCH", `/api/v1/devices/${inside.uuid}`, { name: "yours" });
    await eventually(() => (eventsFor(scoped, inside.uuid).length > 0 ? true : undefined), 5000, "own device");
    await eventually(() => (eventsFor(whole, outside.uuid).length > 0 ? true : undefined), 5000, "admin sees it");
    expect(scoped.text()).not.toContain(outside.uuid);
  });

  it("streams a job's and a rollout's changes to who may read them, and nothing to another group", async () => {
    const mine = await group("fw");
    const other = await group("nofw");
    const type = await cloud.api<{ id: number }>("POST", "/api/v1/device-types", {
      name: `live-type-${newUuid().slice(0, 6)}`,
      firmwareCompat: "live-t1",
    });
    expect(type.status).toBe(201);
    const uploaded = await new Promise<number>((resolve, reject) => {
      const body = Buffer.from("live image");
      const req = https.request(
        new URL("/api/v1/firmware?name=live-fw&version=1.0.0&compatible=live-t1", cloud.url),
        {
          method: "POST",
          ca: cloud.caPem,
          headers: {
            authorization: admin,
            "content-type": "application/octet-stream",
            "content-length": body.length,
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    expect(uploaded).toBe(201);
    const uuid = newUuid();
    expect((await cloud.api("POST", "/api/v1/devices", { uuid, group: mine.id, type: type.body.id })).status).toBe(201);
    const whole = await live({ authorization: admin });
    const outsider = await live({ authorization: await viewerIn(other.id) });
    const job = await cloud.api<{ id: string }>("POST", `/api/v1/devices/${uuid}/jobs`, { firmware: "live-fw@1.0.0" });
    expect(job.status, job.text).toBe(201);
    await eventually(
      () =>
        whole.events().some((e) => e.event === "job" && e.data.uuid === uuid && e.data.jobId === job.body.id)
          ? true
          : undefined,
      5000,
      "the job's event",
    );
    const rollout = await cloud.api<{ id: number }>("POST", "/api/v1/rollouts", {
      firmware: "live-fw@1.0.0",
      target: { devices: [uuid] },
    });
    expect(rollout.status, rollout.text).toBe(201);
    await eventually(
      () => (whole.events().some((e) => e.event === "rollout" && e.data.id === rollout.body.id) ? true : undefined),
      5000,
      "the rollout's event",
    );
    expect((await cloud.api("POST", `/api/v1/rollouts/${rollout.body.id}/abort`)).status).toBe(200);
    await eventually(
      () =>
        whole.events().filter((e) => e.event === "rollout" && e.data.id === rollout.body.id).length >= 2
          ? true
          : undefined,
      5000,
      "the abort's event",
    );
    expect(outsider.events()).toEqual([]);
  });

  it("refuses a 17th stream of one credential with 429 LIVE_STREAMS_EXHAUSTED", async () => {
    const g = await group("cap");
    const viewer = await viewerIn(g.id);
    const streams = await Promise.all(Array.from({ length: 16 }, () => live({ authorization: viewer })));
    expect(streams.map((s) => s.status)).toEqual(Array(16).fill(200));
    const refused = await live({ authorization: viewer });
    expect(refused.status).toBe(429);
    await refused.ended;
    const body = JSON.parse(refused.text()) as Err;
    expect(body.error.code).toBe("LIVE_STREAMS_EXHAUSTED");
    // Another principal is not held to this one's count.
    expect((await live({ authorization: admin })).status).toBe(200);
    // A closed stream frees its place.
    streams[0]?.close();
    await eventually(async () => {
      const again = await live({ authorization: viewer });
      if (again.status === 200) return true;
      await again.ended;
      return undefined;
    });
  });

  it("works with the console's cookie session, refuses without a credential, and ends at logout", async () => {
    const email = `live-${newUuid().slice(0, 8)}@example.test`;
    const password = "a live stream password";
    const root = (await cloud.api<{ items: { id: number; parentId: number | null }[] }>("GET", "/api/v1/groups")).body
      .items[0];
    await cloud.api("POST", "/api/v1/users", { email, password, roles: [{ group: root?.id, role: "viewer" }] });
    const login = await new Promise<{ cookie: string; csrf: string }>((resolve, reject) => {
      const req = https.request(
        new URL("/api/v1/auth/login", cloud.url),
        { method: "POST", ca: cloud.caPem, headers: { "content-type": "application/json" } },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => {
            text += c.toString("utf8");
          });
          res.on("end", () => {
            const cookie = String(res.headers["set-cookie"]?.[0] ?? "").split(";")[0] ?? "";
            resolve({ cookie, csrf: (JSON.parse(text) as { csrfToken: string }).csrfToken });
          });
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify({ email, password, session: "cookie" }));
    });
    const anonymous = await live({});
    expect(anonymous.status).toBe(401);
    const stream = await live({ cookie: login.cookie });
    expect(stream.status).toBe(200);
    const { uuid } = await device(root?.id ?? 0);
    await eventually(() => (eventsFor(stream, uuid).length > 0 ? true : undefined), 5000, "the new device");
    const out = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        new URL("/api/v1/auth/logout", cloud.url),
        { method: "POST", ca: cloud.caPem, headers: { cookie: login.cookie, "x-csrf-token": login.csrf } },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(out).toBe(204);
    await stream.ended;
    expect((await live({ cookie: login.cookie })).status).toBe(401);
  });

  it("ends a credential's streams when it is deleted", async () => {
    const g = await group("gone");
    const made = await cloud.api<{ credential: { id: string }; secret: string }>("POST", "/api/v1/credentials", {
      name: "short-lived",
      group: g.id,
      role: "viewer",
    });
    const stream = await live({ authorization: basic(made.body.credential.id, made.body.secret) });
    expect(stream.status).toBe(200);
    expect((await cloud.api("DELETE", `/api/v1/credentials/${made.body.credential.id}`)).status).toBe(204);
    await stream.ended;
  });

  it("ends every open stream when the cloud stops, without waiting on them", async () => {
    const stream = await live({ authorization: admin });
    expect(stream.status).toBe(200);
    await cloud.stop();
    await stream.ended;
    expect(cloud.logs.some((line) => line.includes('"cloud stopped"'))).toBe(true);
  });
});
