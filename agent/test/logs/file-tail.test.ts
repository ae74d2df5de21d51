import { appendFileSync, renameSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileTail } from "../../src/logs/file-tail.js";
import { entryFromJournalLine } from "../../src/logs/journal-source.js";
import { tempDir } from "../helpers/tmp.js";

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("FileTail", () => {
  let tmp: ReturnType<typeof tempDir>;
  let tail: FileTail | undefined;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => {
    tail?.stop();
    tmp.cleanup();
  });

  it("follows from the end, through rotation and truncation, and waits for a missing file", async () => {
    const file = join(tmp.dir, "app.log");
    writeFileSync(file, "old line before the agent\n");
    const lines: string[] = [];
    const problems: string[] = [];
    tail = new FileTail({ path: file, pollMs: 30, onLine: (l) => lines.push(l), onProblem: (m) => problems.push(m) });
    await tail.start();
    appendFileSync(file, "first\nsecond\npart");
    await until(() => lines.length === 2);
    appendFileSync(file, "ial\n");
    await until(() => lines.length === 3);
    expect(lines).toEqual(["first", "second", "partial"]);

    renameSync(file, `${file}.1`); // logrotate, create mode
    await until(() => problems.length === 1);
    writeFileSync(file, "after rotation\n");
    await until(() => lines.length === 4);
    expect(lines[3]).toBe("after rotation");

    truncateSync(file, 0); // copytruncate
    await new Promise((r) => setTimeout(r, 100));
    appendFileSync(file, "after truncation\n");
    await until(() => lines.length === 5);
    expect(lines[4]).toBe("after truncation");
    expect(problems[0]).toMatch(/cannot read .*app\.log \(ENOENT\); waiting for it/);
  });
});

describe("journal records", () => {
  it("map priority to level, take the realtime timestamp and prefix the identifier", () => {
    expect(
      entryFromJournalLine(
        JSON.stringify({
          MESSAGE: "disk full",
          PRIORITY: "3",
          __REALTIME_TIMESTAMP: "1700000000123456",
          SYSLOG_IDENTIFIER: "kernel",
        }),
      ),
    ).toEqual({ ts: 1_700_000_000_123, level: "error", msg: "[journal:kernel] disk full" });
    expect(entryFromJournalLine(JSON.stringify({ MESSAGE: [104, 105], PRIORITY: "7" }))).toMatchObject({
      level: "debug",
      msg: "[journal:journal] hi",
    });
    expect(entryFromJournalLine("garbage")).toBeUndefined();
  });
});
