import { generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { BULK_COLUMNS } from "../../src/bulk/bulk-operations.js";
import { csvCell, toCsv } from "../../src/bulk/csv-output.js";
import { type CsvRecord, type CsvRowProblem, parseCsvTable } from "../../src/bulk/csv-table.js";
import { normalizeFactoryKey } from "../../src/bulk/factory-key.js";

const columns = { required: ["uuid"], optional: ["name", "tags"] };
const U1 = "3f2c9a4e-8b1d-4c7e-9f0a-1b2c3d4e5f60";
const U2 = "3f2c9a4e-8b1d-4c7e-9f0a-1b2c3d4e5f61";

function codeOf(fn: () => unknown): { code: string; message: string; field?: string } {
  try {
    fn();
  } catch (err) {
    return err as { code: string; message: string; field?: string };
  }
  throw new Error("expected an error");
}

describe("parseCsvTable", () => {
  it("drops a BOM, accepts CRLF, quoted commas and quotes, and skips empty lines", () => {
    const text = `\ufeffUUID,Name,tags\r\n${U1},"press, hall ""4""",a;b\r\n\r\n${U2},plain,\r\n`;
    const table = parseCsvTable(text, columns, 10);
    expect(table.columns).toEqual(["uuid", "name", "tags"]);
    expect(table.rows).toEqual([
      { kind: "record", line: 2, cells: { uuid: U1, name: 'press, hall "4"', tags: "a;b" } },
      { kind: "record", line: 4, cells: { uuid: U2, name: "plain", tags: "" } },
    ]);
  });

  it("numbers rows by the physical line where they start, across quoted line breaks", () => {
    const text = `uuid,name\n${U1},"two\nlines"\n${U2},"three\r\nlines\nhere"\nnext,x\n`;
    const lines = parseCsvTable(text, columns, 10).rows.map((r) => r.line);
    expect(lines).toEqual([2, 4, 7]);
    const crlf = `\ufeffuuid,name\r\n\r\n${U1},"ünïcode\r\nspans"\r\n  \r\n${U2},"x"\r\n`;
    expect(parseCsvTable(crlf, columns, 10).rows.map((r) => r.line)).toEqual([3, 6]);
  });

  it("reports a row with too few or too many cells by its line, and keeps reading", () => {
    const text = `uuid,name\n${U1}\n${U2},a,b\n${U1},ok\n`;
    const rows = parseCsvTable(text, columns, 10).rows;
    expect(rows.map((r) => r.kind)).toEqual(["problem", "problem", "record"]);
    const first = rows[0] as CsvRowProblem;
    expect(first.line).toBe(2);
    expect(first.error.code).toBe("CSV_ROW_INVALID");
    expect(first.error.message).toContain("1 cell(s) but the header has 2");
    expect((rows[2] as CsvRecord).line).toBe(4);
  });

  it("refuses unknown, repeated, empty and missing columns, naming them", () => {
    expect(codeOf(() => parseCsvTable("uuid,colour\n", columns, 10))).toMatchObject({
      code: "CSV_INVALID",
      field: "colour",
      message: expect.stringContaining('unknown column "colour"'),
    });
    expect(codeOf(() => parseCsvTable("uuid,name,Name\n", columns, 10))).toMatchObject({
      code: "CSV_INVALID",
      message: expect.stringContaining("appears twice"),
    });
    expect(codeOf(() => parseCsvTable("uuid,,name\n", columns, 10)).message).toContain("column 2 is empty");
    expect(codeOf(() => parseCsvTable("name\nx\n", columns, 10))).toMatchObject({ code: "CSV_INVALID", field: "uuid" });
  });

  it("requires a header row: an empty file or one starting with data is CSV_INVALID", () => {
    expect(codeOf(() => parseCsvTable("", columns, 10)).message).toContain("empty");
    expect(codeOf(() => parseCsvTable("\ufeff\r\n\r\n", columns, 10)).code).toBe("CSV_INVALID");
    expect(codeOf(() => parseCsvTable(`${U1},a\n${U2},b\n`, columns, 10)).message).toContain("not a header row");
  });

  it("makes broken quoting a file error with its line", () => {
    const unclosed = codeOf(() => parseCsvTable(`uuid,name\n${U1},ok\n${U2},"never closed\n`, columns, 10));
    expect(unclosed).toMatchObject({ code: "CSV_INVALID" });
    expect(unclosed.message).toMatch(/^line \d+: a quoted cell is never closed/);
    const trailing = codeOf(() => parseCsvTable(`uuid,name\n${U1},"a"b\n`, columns, 10));
    expect(trailing.message).toMatch(/^line 2: text follows a closing quote/);
  });

  it("refuses files over the row limit", () => {
    const text = `uuid\n${[U1, U2, U1].join("\n")}\n`;
    expect(codeOf(() => parseCsvTable(text, columns, 2)).message).toContain("at most 2");
  });
});

describe("toCsv", () => {
  it("neutralises cells a spreadsheet would run as formulas", () => {
    for (const lead of ["=", "+", "-", "@", "\t", "\r"])
      expect(csvCell(`${lead}1+1`).startsWith(`'${lead}`) || csvCell(`${lead}1+1`).startsWith(`"'${lead}`)).toBe(true);
    expect(csvCell('=HYPERLINK("http://x")')).toBe('"\'=HYPERLINK(""http://x"")"');
    expect(csvCell("fgt_abc-def")).toBe("fgt_abc-def");
    expect(csvCell("-")).toBe("'-");
  });

  it("quotes commas, quotes and line breaks, and ends lines in CRLF", () => {
    expect(
      toCsv(
        ["a", "b"],
        [
          ["x,y", 'say "hi"'],
          ["multi\nline", "plain"],
        ],
      ),
    ).toBe('a,b\r\n"x,y","say ""hi"""\r\n"multi\nline",plain\r\n');
  });
});

describe("normalizeFactoryKey", () => {
  const ec = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const pem = ec.publicKey.export({ type: "spki", format: "pem" }).toString();

  it("accepts P-256 and Ed25519 SPKI as PEM, PEM with \\n escapes, or bare base64 DER", () => {
    expect(normalizeFactoryKey(pem, "k")).toBe(pem);
    expect(normalizeFactoryKey(pem.trim().replace(/\n/g, "\\n"), "k")).toBe(pem);
    const der = ec.publicKey.export({ type: "spki", format: "der" }).toString("base64");
    expect(normalizeFactoryKey(der, "k")).toBe(pem);
    const ed = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    expect(normalizeFactoryKey(ed, "k")).toBe(ed);
  });

  it("refuses garbage, other curves, RSA and private keys", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const p384 = generateKeyPairSync("ec", { namedCurve: "secp384r1" });
    const cases: [string, string][] = [
      ["not a key at all", "not a public key"],
      [p384.publicKey.export({ type: "spki", format: "pem" }).toString(), "P-256 or Ed25519"],
      [rsa.publicKey.export({ type: "spki", format: "pem" }).toString(), "not rsa"],
      [ec.privateKey.export({ type: "pkcs8", format: "pem" }).toString(), "private key"],
    ];
    for (const [cell, reason] of cases) {
      expect(codeOf(() => normalizeFactoryKey(cell, "factory_public_key"))).toMatchObject({
        code: "VALIDATION_FAILED",
        field: "factory_public_key",
        message: expect.stringContaining(reason),
      });
    }
  });
});

describe("the documented example files", () => {
  const examples = path.resolve(import.meta.dirname, "../../../docs/examples");
  const files: Record<string, keyof typeof BULK_COLUMNS> = {
    "bulk-import.csv": "import",
    "bulk-edit.csv": "edit",
    "bulk-transfer.csv": "transfer",
    "bulk-replace.csv": "replace",
    "bulk-delete.csv": "delete",
  };

  it("each parses with its operation's columns, every row whole", () => {
    for (const [name, operation] of Object.entries(files)) {
      const table = parseCsvTable(fs.readFileSync(path.join(examples, name), "utf8"), BULK_COLUMNS[operation], 10);
      expect(table.rows.length, name).toBeGreaterThan(0);
      expect(
        table.rows.every((r) => r.kind === "record"),
        name,
      ).toBe(true);
    }
    const imported = parseCsvTable(
      fs.readFileSync(path.join(examples, "bulk-import.csv"), "utf8"),
      BULK_COLUMNS.import,
      10,
    );
    const key = (imported.rows[0] as CsvRecord).cells.factory_public_key ?? "";
    expect(normalizeFactoryKey(key, "factory_public_key")).toContain("BEGIN PUBLIC KEY");
  });
});
