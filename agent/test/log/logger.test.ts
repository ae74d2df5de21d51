import { describe, expect, it } from "vitest";
import { createLogger, logTeeOf, stdoutDestination } from "../../src/log/logger.js";

/** A destination that keeps what the logger writes. */
function capture(): { lines: string[]; write: (line: string) => void } {
  const lines: string[] = [];
  return { lines, write: (line: string) => lines.push(line) };
}

const secret = "fgt_secret-token-value";

describe("the agent's log format", () => {
  it("json: every line is a JSON object, secrets redacted", () => {
    const out = capture();
    const logger = createLogger("info", stdoutDestination("json", { destination: out, isTTY: true }));
    logger.info({ enrollment: { token: secret } }, "enrolling");
    expect(out.lines).toHaveLength(1);
    const entry = JSON.parse(out.lines[0] ?? "") as { msg: string; enrollment: { token: string } };
    expect(entry).toMatchObject({ msg: "enrolling", enrollment: { token: "[redacted]" } });
  });

  it("pretty: human-readable lines that redact what the JSON redacts; the forwarder still gets JSON", () => {
    const out = capture();
    const logger = createLogger("info", stdoutDestination("pretty", { destination: out, isTTY: false }));
    const forwarded: string[] = [];
    logTeeOf(logger)?.setTap((line) => forwarded.push(line));
    logger.warn({ token: secret, key: "-----BEGIN PRIVATE KEY-----" }, "enrollment window closed");
    expect(out.lines).toHaveLength(1);
    const line = out.lines[0] ?? "";
    expect(line).toMatch(/^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\] WARN: enrollment window closed/);
    expect(line).not.toContain(secret);
    expect(line).not.toContain("BEGIN PRIVATE KEY");
    expect(line).toContain("[redacted]");
    // Not a terminal, so no colour codes even when forced to pretty.
    expect(line).not.toContain("\u001b[");
    expect(JSON.parse(forwarded[0] ?? "")).toMatchObject({ msg: "enrollment window closed", token: "[redacted]" });
  });

  it("auto: JSON when stdout is not a terminal, pretty when it is", () => {
    const pipe = capture();
    createLogger("info", stdoutDestination("auto", { destination: pipe, isTTY: false })).info("hello");
    expect(JSON.parse(pipe.lines[0] ?? "")).toMatchObject({ msg: "hello" });
    const tty = capture();
    createLogger("info", stdoutDestination("auto", { destination: tty, isTTY: true })).info("hello");
    expect(tty.lines[0]).not.toMatch(/^\{/);
    expect(tty.lines[0]).toContain("hello");
  });
});
