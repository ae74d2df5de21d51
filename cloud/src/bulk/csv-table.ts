import { FieldgateError } from "@fieldgate/shared";
import { CsvError, parse } from "csv-parse/sync";

/** The columns an operation accepts. Header names are matched case-insensitively. */
export interface CsvColumns {
  required: readonly string[];
  optional: readonly string[];
}

/** A data row: its physical start line (the header is line 1) and its cells by column name. */
export interface CsvRecord {
  kind: "record";
  line: number;
  cells: Readonly<Record<string, string>>;
}

/** A row that cannot be read as a record, such as one with the wrong number of cells. */
export interface CsvRowProblem {
  kind: "problem";
  line: number;
  error: FieldgateError;
}

export type CsvRow = CsvRecord | CsvRowProblem;

export interface CsvTable {
  columns: readonly string[];
  rows: readonly CsvRow[];
}

const UUID_LIKE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Reads a bulk file strictly: a header row is required and every column must be known; a BOM is
 * dropped, CRLF and quoted commas or line breaks are fine, empty lines are skipped. A row with the
 * wrong number of cells becomes a row problem; broken quoting makes the whole file CSV_INVALID,
 * because nothing after it can be read reliably.
 */
export function parseCsvTable(text: string, columns: CsvColumns, maxRows: number): CsvTable {
  let records: ParsedRecord[];
  try {
    records = parse(text, {
      bom: true,
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
      trim: true,
      max_record_size: 64 * 1024,
    }) as unknown as ParsedRecord[];
  } catch (err) {
    if (err instanceof CsvError) throw csvSyntaxError(err);
    throw err;
  }
  const lineOf = startLines(text);
  const [header, ...data] = records;
  if (!header) throw new FieldgateError("CSV_INVALID", "the file is empty; a header row is required", "header");
  const names = readHeader(header.record, columns);
  if (data.length > maxRows) {
    throw new FieldgateError("CSV_INVALID", `the file has ${data.length} rows; at most ${maxRows} per file`, "rows");
  }
  lineOf(header.info.bytes);
  const rows = data.map(({ record, info }): CsvRow => {
    const line = lineOf(info.bytes);
    if (record.length !== names.length) {
      return {
        kind: "problem",
        line,
        error: new FieldgateError(
          "CSV_ROW_INVALID",
          `line ${line} has ${record.length} cell(s) but the header has ${names.length} column(s); quote cells that contain commas`,
        ),
      };
    }
    const cells: Record<string, string> = {};
    names.forEach((name, i) => {
      cells[name] = record[i] ?? "";
    });
    return { kind: "record", line, cells };
  });
  return { columns: names, rows };
}

function readHeader(cells: string[], columns: CsvColumns): string[] {
  const known = [...columns.required, ...columns.optional];
  const names = cells.map((c) => c.trim().toLowerCase());
  const missing = columns.required.filter((c) => !names.includes(c));
  if (missing.length > 0 && cells.some((c) => UUID_LIKE.test(c.trim()))) {
    throw new FieldgateError(
      "CSV_INVALID",
      `line 1 holds data, not a header row; start the file with a header such as ${known.join(",")}`,
      "header",
    );
  }
  names.forEach((name, i) => {
    if (name === "") throw new FieldgateError("CSV_INVALID", `header column ${i + 1} is empty`, "header");
    if (!known.includes(name)) {
      throw new FieldgateError(
        "CSV_INVALID",
        `unknown column ${JSON.stringify(cells[i])}; the columns are ${known.join(", ")}`,
        name,
      );
    }
    if (names.indexOf(name) !== i)
      throw new FieldgateError("CSV_INVALID", `column ${JSON.stringify(name)} appears twice in the header`, name);
  });
  if (missing.length > 0) {
    throw new FieldgateError(
      "CSV_INVALID",
      `the header lacks the required column(s) ${missing.join(", ")}`,
      missing[0],
    );
  }
  return names;
}

function csvSyntaxError(err: CsvError): FieldgateError {
  const line = (err as CsvError & { lines?: number }).lines;
  const at = line ? `line ${line}: ` : "";
  // As a string: csv-parse emits codes its type does not list, such as CSV_INVALID_OPENING_QUOTE.
  switch (err.code as string) {
    case "CSV_QUOTE_NOT_CLOSED":
      return new FieldgateError("CSV_INVALID", `${at}a quoted cell is never closed`);
    case "CSV_INVALID_CLOSING_QUOTE":
      return new FieldgateError(
        "CSV_INVALID",
        `${at}text follows a closing quote; quote the whole cell and double any quote inside it ("")`,
      );
    case "CSV_INVALID_OPENING_QUOTE":
      return new FieldgateError(
        "CSV_INVALID",
        `${at}a quote inside an unquoted cell; quote the whole cell and double any quote inside it ("")`,
      );
    case "CSV_MAX_RECORD_SIZE":
      return new FieldgateError("CSV_INVALID", `${at}a row is larger than 64 KiB`);
    default:
      return new FieldgateError("CSV_INVALID", `${at}${err.message}`);
  }
}

interface ParsedRecord {
  record: string[];
  /** `bytes`: the UTF-8 bytes consumed up to the end of this record, its line break included. */
  info: { bytes: number };
}

/**
 * Returns a function that, called with each record's end offset in order, gives the physical line
 * where that record starts. csv-parse's own line count is off for CRLF inside quoted cells (it
 * counts CR and LF apart), so lines are counted here, on the same UTF-8 bytes it parsed.
 */
function startLines(text: string): (recordEnd: number) => number {
  const bytes = Buffer.from(text, "utf8");
  let cursor = 0;
  let line = 1;
  const advance = (to: number) => {
    for (; cursor < to; cursor++) if (bytes[cursor] === 0x0a) line++;
  };
  return (recordEnd) => {
    // Blank lines (and indentation) before a record are skipped by the parser, so skip them here.
    let start = cursor;
    while (start < recordEnd && isBlank(bytes[start])) start++;
    advance(start);
    const first = line;
    advance(recordEnd);
    return first;
  };
}

function isBlank(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0a;
}
