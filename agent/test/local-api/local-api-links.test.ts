import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { LinkView } from "../../src/links/link-manager.js";
import { LocalApi } from "../../src/local-api/local-api.js";
import { getFromLocalApi, LocalApiCallError } from "../../src/local-api/local-api-client.js";
import { memoryLogger } from "../helpers/logger.js";
import { tempDir } from "../helpers/tmp.js";

const view: LinkView = {
  id: "meter",
  type: "serial",
  enabled: true,
  state: "connected",
  since: 1,
  lastReading: { ts: 2, readings: [{ name: "voltage", value: 230.5, unit: "V" }] },
  counters: { readings: 1, framingErrors: 0, reconnects: 0, exceptions: 0, timeouts: 0 },
};

describe("GET /v1/links", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("lists the manager's links, and the CLI client reads them over the socket", async () => {
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    const socket = join(tmp.dir, "agent.sock");
    const api = new LocalApi({
      socket,
      sink: { append: () => ({ appended: 0, dropped: 0 }) },
      health: {
        post: () => ({ name: "x", status: "ok", message: "" }),
        remove: () => false,
        get: () => undefined,
        snapshot: () => ({ status: "ok", ts: 0, checks: [] }),
      },
      links: { list: () => [view] },
      logger: memoryLogger().logger,
    });
    await api.start();
    cleanups.push(() => api.stop());
    expect(await getFromLocalApi(socket, "/v1/links")).toEqual({ links: [view] });
    await expect(getFromLocalApi(socket, "/v1/nothing")).rejects.toMatchObject({ code: "HTTP_404" });
  });

  it("says why when nothing listens", async () => {
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    const err = await getFromLocalApi(join(tmp.dir, "none.sock"), "/v1/links").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LocalApiCallError);
    expect((err as LocalApiCallError).code).toBe("ENOENT");
  });
});
