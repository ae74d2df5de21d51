import path from "node:path";
import { describe, expect, it } from "vitest";
import { startAgent, writeAgentConfig } from "../support/agent-process.js";
import { tempDir } from "../support/cloud-process.js";

describe("agent stop signals", () => {
  it("stops cleanly (exit 0) on a SIGTERM that arrives while it is still starting", async () => {
    const dir = tempDir("agent-sigterm");
    const file = writeAgentConfig(dir, {
      uuid: "0b6a2f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
      dataDir: path.join(dir, "data"),
      // Nothing listens here: the agent is busy trying to enroll when the signal comes.
      cloud: { url: "https://127.0.0.1:9" },
    });
    const agent = startAgent(file);
    await agent.waitForLog(/starting/);
    expect(await agent.stop()).toBe(0);
  });
});
