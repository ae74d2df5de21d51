/**
 * The `lines` protocol of a serial link: bytes are cut into lines (bounded), and each line decodes
 * as JSON, `key=value` pairs or a regex's named groups into readings. Nothing here throws on bad
 * input: every problem comes back as a counted error, so a noisy sensor cannot stop the link.
 */
import { type LinesProtocol, READING_NAME_PATTERN } from "@fieldgate/shared";
import type { LinkReading } from "../link.js";

/** The default and the bound of one line, in bytes. */
export const DEFAULT_MAX_LINE_LENGTH = 1024;
/** Longest string value a reading may carry (the shared `Reading` schema's limit). */
export const MAX_STRING_VALUE = 1024;

const NEWLINE = 0x0a;
const NAME = new RegExp(READING_NAME_PATTERN);

/**
 * Cuts a byte stream into lines at `\n` (a trailing `\r` is dropped). A line longer than
 * `maxLineLength` is discarded whole, up to its newline, and counted: the buffer never holds more
 * than `maxLineLength` bytes.
 */
export class LineSplitter {
  private readonly parts: Buffer[] = [];
  private size = 0;
  private discarding = false;
  /** Lines dropped for being too long. */
  overlong = 0;

  constructor(readonly maxLineLength: number = DEFAULT_MAX_LINE_LENGTH) {}

  /** Bytes held while waiting for a newline (at most `maxLineLength`). */
  get buffered(): number {
    return this.size;
  }

  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NEWLINE, start);
      const end = nl === -1 ? chunk.length : nl;
      if (!this.discarding) this.append(chunk.subarray(start, end));
      if (nl === -1) break;
      if (!this.discarding) lines.push(this.take());
      this.discarding = false;
      start = nl + 1;
    }
    return lines;
  }

  /** Forgets a partial line (after a reconnect, its start belongs to another session). */
  reset(): void {
    this.parts.length = 0;
    this.size = 0;
    this.discarding = false;
  }

  private append(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (this.size + bytes.length > this.maxLineLength) {
      this.reset();
      this.discarding = true;
      this.overlong += 1;
      return;
    }
    this.parts.push(Buffer.from(bytes));
    this.size += bytes.length;
  }

  private take(): string {
    const text = Buffer.concat(this.parts, this.size).toString("utf8");
    this.parts.length = 0;
    this.size = 0;
    return text.endsWith("\r") ? text.slice(0, -1) : text;
  }
}

/** What one line gave: readings, and a description of what was wrong with it, if anything. */
export interface DecodedLine {
  readings: LinkReading[];
  /** Set when the line, or a field of it, could not be decoded (counted as one framing error). */
  error?: string;
}

/** Decodes lines of one configured format; build once per link (the regex is compiled here). */
export class LineDecoder {
  private readonly regex: RegExp | undefined;
  private readonly units: Record<string, string>;

  constructor(private readonly protocol: LinesProtocol) {
    this.regex = protocol.format === "regex" && protocol.regex ? new RegExp(protocol.regex) : undefined;
    this.units = protocol.units ?? {};
  }

  decode(line: string): DecodedLine {
    if (line.trim() === "") return { readings: [] };
    switch (this.protocol.format) {
      case "json":
        return this.fromEntries(jsonEntries(line));
      case "kv":
        return this.fromEntries(kvEntries(line));
      case "regex":
        return this.fromEntries(regexEntries(line, this.regex as RegExp));
    }
  }

  private fromEntries(parsed: { entries: [string, unknown][]; error?: string }): DecodedLine {
    const readings: LinkReading[] = [];
    let error = parsed.error;
    for (const [name, raw] of parsed.entries) {
      const value = readingValue(raw);
      if (!NAME.test(name)) {
        error ??= `${JSON.stringify(name.slice(0, 64))} is not a valid reading name`;
        continue;
      }
      if (value === undefined) {
        error ??= `${name}: value is not a finite number, a string of at most ${MAX_STRING_VALUE} characters or a boolean`;
        continue;
      }
      const unit = this.units[name];
      readings.push(unit === undefined ? { name, value } : { name, value, unit });
    }
    if (readings.length === 0 && error === undefined) error = "the line holds no values";
    return error === undefined ? { readings } : { readings, error };
  }
}

function readingValue(raw: unknown): number | string | boolean | undefined {
  if (typeof raw === "number") return Number.isFinite(raw) ? raw : undefined;
  if (typeof raw === "boolean") return raw;
  if (typeof raw === "string") return raw.length <= MAX_STRING_VALUE ? raw : undefined;
  return undefined;
}

/** Text to a number when it is one (`21.5`, `-3`, `1e3`), else the boolean words, else the text. */
function scalarOf(text: string): number | string | boolean {
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return Number(text);
  if (text === "true" || text === "false") return text === "true";
  return text;
}

function jsonEntries(line: string): { entries: [string, unknown][]; error?: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return { entries: [], error: "not valid JSON" };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { entries: [], error: "not a JSON object" };
  }
  return { entries: Object.entries(parsed) };
}

/** `temp=21.5 hum=40` (separated by spaces, commas or semicolons). */
function kvEntries(line: string): { entries: [string, unknown][]; error?: string } {
  const entries: [string, unknown][] = [];
  let error: string | undefined;
  for (const token of line.trim().split(/[\s,;]+/)) {
    if (token === "") continue;
    const eq = token.indexOf("=");
    if (eq <= 0) {
      error ??= `${JSON.stringify(token.slice(0, 64))} is not key=value`;
      continue;
    }
    entries.push([token.slice(0, eq), scalarOf(token.slice(eq + 1))]);
  }
  return error === undefined ? { entries } : { entries, error };
}

function regexEntries(line: string, regex: RegExp): { entries: [string, unknown][]; error?: string } {
  const match = regex.exec(line);
  if (!match?.groups) return { entries: [], error: "the line does not match the regex" };
  const entries: [string, unknown][] = [];
  for (const [name, text] of Object.entries(match.groups)) if (text !== undefined) entries.push([name, scalarOf(text)]);
  return { entries };
}
