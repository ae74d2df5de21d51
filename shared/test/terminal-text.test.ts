import { describe, expect, it } from "vitest";
import { visibleText } from "../src/terminal-text.js";

describe("visibleText", () => {
  it("shows C0 and C1 controls, DEL and bidi overrides as escapes", () => {
    expect(visibleText("C\u001b[2J")).toBe("C\\x1b[2J");
    expect(visibleText("a\nb\rc\td")).toBe("a\\nb\\rc\\td");
    expect(visibleText("\u0000\u0007\u007f\u0085\u009b")).toBe("\\x00\\x07\\x7f\\x85\\x9b");
    expect(visibleText("abc\u202edcba\u2066")).toBe("abc\\u202edcba\\u2066");
  });

  it("leaves printable text alone, non-ASCII included", () => {
    for (const text of ["21.5 °C", "Zähler 3 – kWh", "温度", "C:\\path", ""]) expect(visibleText(text)).toBe(text);
  });
});
