import { statSync } from "node:fs";
import { FieldgateError, UUID_PATTERN } from "@fieldgate/shared";

/**
 * Parsers for the CLI's flag values (commander `argParser`s). A malformed value is
 * `CONFIG_INVALID` naming the flag, the value and what is expected, before any command runs.
 */
export type FlagParser = (value: string) => string;

/** `CONFIG_INVALID` on `--flag`: `"<value>" <what is wrong>; expected <what>`. */
export function flagError(flag: string, value: string, expected: string, problem = "is not valid"): FieldgateError {
  return new FieldgateError("CONFIG_INVALID", `${JSON.stringify(value)} ${problem}; expected ${expected}`, flag);
}

/** A file path: not empty, no NUL byte (the file itself is checked by the command that reads it). */
export function pathFlag(flag: string, what = "a file path"): FlagParser {
  return (value) => {
    if (value.trim() === "") throw flagError(flag, value, what, "is empty");
    if (value.includes("\0")) throw flagError(flag, value, what, "contains a NUL byte");
    return value;
  };
}

/** A directory that may not exist yet, but is not a file. */
export function dirFlag(flag: string): FlagParser {
  const path = pathFlag(flag, "a directory");
  return (value) => {
    path(value);
    if (statSync(value, { throwIfNoEntry: false })?.isDirectory() === false) {
      throw flagError(flag, value, "a directory", "is a file, not a directory");
    }
    return value;
  };
}

/** The cloud API's https URL; the usual slips (http://, no scheme, no host) each named. */
export function httpsUrlFlag(flag: string): FlagParser {
  const expected = "the cloud API's https URL, such as https://cloud.example:8443";
  return (value) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw flagError(flag, value, expected, "is not a URL");
    }
    // `localhost:9443` parses as the scheme "localhost:".
    if (url.protocol !== "https:") {
      const problem = url.protocol === "http:" ? "is plain http" : "does not start with https://";
      throw flagError(flag, value, expected, problem);
    }
    if (url.hostname === "") throw flagError(flag, value, expected, "has no host");
    if (url.username || url.password) throw flagError(flag, value, expected, "must not carry a user or password");
    return value;
  };
}

const UUID = new RegExp(UUID_PATTERN);

export function uuidFlag(flag: string): FlagParser {
  return (value) => {
    if (!UUID.test(value)) throw flagError(flag, value, "a uuid such as 3f2c9a4e-8b1d-4c7e-9f0a-1b2c3d4e5f60");
    return value.toLowerCase();
  };
}

/** An enrollment token as `devices add` prints it; the value is never echoed back. */
export function tokenFlag(flag: string): FlagParser {
  const expected = "the enrollment token `fieldgate-cloud devices add` or `reset-token` printed (fgt_…)";
  return (value) => {
    const fail = (problem: string) =>
      new FieldgateError("CONFIG_INVALID", `the value ${problem}; expected ${expected}`, flag);
    if (value.trim() === "") throw fail("is empty");
    if (value.length > 256) throw fail(`is ${value.length} characters long, more than 256`);
    if (/\s/.test(value)) throw fail("contains white space");
    return value;
  };
}
