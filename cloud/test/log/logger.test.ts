import { FieldgateError } from "@fieldgate/shared";
import { describe, expect, it } from "vitest";
import { createCloudLogger, resolveLogFormat } from "../../src/log/logger.js";

function capture(): { lines: string[]; write: (line: string) => void } {
  const lines: string[] = [];
  return { lines, write: (line: string) => lines.push(line) };
}

const secret = "fgs_secret-credential-value";

describe("the cloud's log format", () => {
  it("json: every line is a JSON object, secrets redacted", () => {
    const out = capture();
    createCloudLogger("info", "json", { destination: out, isTTY: true }).info({ credential: { secret } }, "created");
    expect(JSON.parse(out.lines[0] ?? "")).toMatchObject({ msg: "created", credential: { secret: "[redacted]" } });
  });

  it("pretty: a human-readable line that redacts what the JSON redacts", () => {
    const out = capture();
    const logger = createCloudLogger("info", "pretty", { destination: out, isTTY: false });
    logger.info({ req: { headers: { authorization: `Basic ${secret}` } }, device: { enrollmentToken: secret } }, "x");
    const line = out.lines[0] ?? "";
    expect(line).toMatch(/^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\] INFO: x/);
    expect(line).not.toContain(secret);
    expect(line.match(/\[redacted\]/g)).toHaveLength(2);
  });

  it("auto: JSON on a pipe, pretty on a terminal", () => {
    const pipe = capture();
    createCloudLogger("info", "auto", { destination: pipe, isTTY: false }).info("hello");
    expect(JSON.parse(pipe.lines[0] ?? "")).toMatchObject({ msg: "hello" });
    const tty = capture();
    createCloudLogger("info", "auto", { destination: tty, isTTY: true }).info("hello");
    expect(tty.lines[0]).not.toMatch(/^\{/);
  });

  it("takes --log-format over FIELDGATE_LOG_FORMAT, and rejects other values naming the source", () => {
    expect(resolveLogFormat(undefined, {})).toBe("auto");
    expect(resolveLogFormat(undefined, { FIELDGATE_LOG_FORMAT: "json" })).toBe("json");
    expect(resolveLogFormat("pretty", { FIELDGATE_LOG_FORMAT: "json" })).toBe("pretty");
    expect(() => resolveLogFormat("xml", {})).toThrow(
      new FieldgateError(
        "CONFIG_INVALID",
        '--log-format "xml" is not a log format: use auto, json, pretty',
        "--log-format",
      ),
    );
    expect(() => resolveLogFormat(undefined, { FIELDGATE_LOG_FORMAT: "text" })).toThrow(
      new FieldgateError(
        "CONFIG_INVALID",
        'FIELDGATE_LOG_FORMAT "text" is not a log format: use auto, json, pretty',
        "FIELDGATE_LOG_FORMAT",
      ),
    );
  });
});
