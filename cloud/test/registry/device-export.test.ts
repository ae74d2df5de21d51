import { describe, expect, it } from "vitest";
import {
  csvCell,
  csvLine,
  type DeviceExportRecord,
  exportChunks,
  exportStream,
  parseExportColumns,
} from "../../src/registry/device-export.js";

const record = (over: Partial<DeviceExportRecord> = {}): DeviceExportRecord => ({
  uuid: "00000000-0000-4000-8000-000000000001",
  name: "press",
  location: "",
  comment: "",
  tags: ["a", "b"],
  group: "default/plant",
  type: null,
  status: "ok",
  online: true,
  lastSeen: null,
  firmwareVersion: "1.2.3",
  certificateExpires: null,
  createdAt: "2026-01-01T00:00:00.000Z",
  ...over,
});

describe("CSV cells", () => {
  it("escapes cells a spreadsheet would run as a formula (ASVS 1.2.10)", () => {
    expect(csvCell("=1+1")).toBe("'=1+1");
    expect(csvCell("+49 30")).toBe("'+49 30");
    expect(csvCell("-2")).toBe("'-2");
    expect(csvCell("@SUM(A1)")).toBe("'@SUM(A1)");
    expect(csvCell("\tx")).toBe("'\tx");
    expect(csvCell("\rx")).toBe('"\'\rx"');
    expect(csvCell("a=1")).toBe("a=1");
    expect(csvCell("")).toBe("");
  });

  it("quotes cells with commas, quotes and line breaks (RFC 4180)", () => {
    expect(csvCell("a,b")).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell("two\nlines")).toBe('"two\nlines"');
    expect(csvCell('=HYPERLINK("x","y")')).toBe(`"'=HYPERLINK(""x"",""y"")"`);
    expect(csvLine(["a", "b,c", "=d"])).toBe('a,"b,c",\'=d\r\n');
  });
});

describe("export columns", () => {
  it("defaults to eight columns and accepts up to eight known ones", () => {
    expect(parseExportColumns(undefined)).toHaveLength(8);
    expect(parseExportColumns("uuid, name,tags")).toEqual(["uuid", "name", "tags"]);
  });

  it("refuses unknown, repeated, none, or more than eight with VALIDATION_FAILED on columns", () => {
    const nine = "uuid,name,location,comment,tags,group,type,status,online";
    for (const text of [nine, "uuid,colour", "uuid,uuid", "", " , "]) {
      expect(() => parseExportColumns(text), text).toThrow(
        expect.objectContaining({ code: "VALIDATION_FAILED", field: "columns" }),
      );
    }
  });
});

describe("export chunks", () => {
  it("writes CSV with a header and one line per device, tags space-separated", async () => {
    const text = (
      await collect(
        exportChunks([[record({ name: "=1+1" })], [record({ online: false, type: "x" })]], "csv", [
          "name",
          "tags",
          "online",
          "type",
          "lastSeen",
        ]),
      )
    ).join("");
    expect(text).toBe("name,tags,online,type,lastSeen\r\n'=1+1,a b,true,,\r\npress,a b,false,x,\r\n");
  });

  it("writes a JSON array of the chosen columns, also when empty", async () => {
    const text = (await collect(exportChunks([[record()], [record({ name: "b" })]], "json", ["name", "tags"]))).join(
      "",
    );
    expect(JSON.parse(text)).toEqual([
      { name: "press", tags: ["a", "b"] },
      { name: "b", tags: ["a", "b"] },
    ]);
    expect(JSON.parse((await collect(exportChunks([], "json", ["uuid"]))).join(""))).toEqual([]);
  });

  it("pulls pages only as the reader asks for them", async () => {
    let pulled = 0;
    function* pages() {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield [record({ name: `${i}`.padEnd(1000, "x") })];
      }
    }
    const stream = exportStream(pages(), "csv", ["name"]);
    // Nobody consumes: the stream fills its small buffer and stops pulling pages.
    stream.read(0);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(pulled).toBeLessThan(5);
    let lines = 0;
    for await (const chunk of stream) lines += String(chunk).split("\r\n").length - 1;
    expect(lines).toBe(1001);
    expect(pulled).toBe(1000);
  });
});

async function collect(chunks: AsyncIterable<string>): Promise<string[]> {
  const all: string[] = [];
  for await (const chunk of chunks) all.push(chunk);
  return all;
}
