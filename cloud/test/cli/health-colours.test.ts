import { describe, expect, it } from "vitest";
import { paintStatus, statusWord, useColour } from "../../src/cli/health-colours.js";
import { renderTable } from "../../src/cli/table.js";

describe("status words and colours", () => {
  it("always gives a word: the health, or offline with the last health kept", () => {
    expect(statusWord({ online: true, health: "warning" })).toBe("warning");
    expect(statusWord({ online: false, health: "critical" })).toBe("offline (last: critical)");
    expect(statusWord({ online: true, health: null })).toBe("unknown");
  });

  it("paints white, yellow, red, and grey when offline", () => {
    expect(paintStatus({ online: true, health: "ok" }, "ok")).toBe("\u001b[97mok\u001b[0m");
    expect(paintStatus({ online: true, health: "warning" }, "warning")).toBe("\u001b[33mwarning\u001b[0m");
    expect(paintStatus({ online: true, health: "critical" }, "critical")).toBe("\u001b[31mcritical\u001b[0m");
    expect(paintStatus({ online: false, health: "critical" }, "x")).toBe("\u001b[90mx\u001b[0m");
  });

  it("colours only on a terminal and never with NO_COLOR", () => {
    const tty = { isTTY: true } as NodeJS.WriteStream;
    const pipe = { isTTY: false } as NodeJS.WriteStream;
    expect(useColour(tty, {})).toBe(true);
    expect(useColour(pipe, {})).toBe(false);
    expect(useColour(tty, { NO_COLOR: "1" })).toBe(false);
  });

  it("keeps columns aligned when cells are painted", () => {
    const table = renderTable(
      ["A", "B"],
      [
        ["warning", "x"],
        ["ok", "y"],
      ],
      (_r, c, padded) => (c === 0 ? `\u001b[33m${padded}\u001b[0m` : padded),
    );
    const esc = String.fromCharCode(27);
    const plain = table.replace(new RegExp(`${esc}\\[\\d+m`, "g"), "").split("\n");
    expect(plain).toEqual(["A        B", "warning  x", "ok       y"]);
  });
});
