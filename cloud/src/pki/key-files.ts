import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from "node:crypto";
import fs from "node:fs";
import { FieldgateError } from "@fieldgate/shared";

/** Which option or setting a file belongs to, and what the operator should do about a bad one. */
export interface KeyFileContext {
  /** The flag or setting that names the file (the error's field). */
  field: string;
  /** The fix, as a sentence: what to run or where to put the right file. */
  fix: string;
}

const invalid = (file: string, problem: string, context: KeyFileContext) =>
  new FieldgateError("CONFIG_INVALID", `${file} ${problem}. ${context.fix}`, context.field);

/** Reads a PEM file; missing, unreadable or not PEM at all is an error naming the file and the fix. */
export function readPemFile(file: string, context: KeyFileContext): string {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw invalid(file, code === "ENOENT" ? "does not exist" : `cannot be read (${code ?? "error"})`, context);
  }
  if (!/-----BEGIN [A-Z0-9 ]+-----/.test(text)) throw invalid(file, "is not a PEM file (no -----BEGIN line)", context);
  return text;
}

/** A certificate file: PEM, holding a certificate, and valid at `now` (not expired unless allowed, already valid). */
export function readCertificateFile(
  file: string,
  context: KeyFileContext,
  now: Date = new Date(),
  options: { allowExpired?: boolean } = {},
): X509Certificate {
  const text = readPemFile(file, context);
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw invalid(file, `holds no certificate (it holds ${pemKinds(text)})`, context);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(text);
  } catch {
    throw invalid(file, "holds a certificate block that does not parse", context);
  }
  if (!options.allowExpired && Date.parse(cert.validTo) <= now.getTime())
    throw invalid(file, `expired on ${iso(cert.validTo)}`, context);
  if (Date.parse(cert.validFrom) > now.getTime()) {
    throw invalid(file, `is not valid before ${iso(cert.validFrom)} (is this host's clock right?)`, context);
  }
  return cert;
}

/** A private key file: PEM holding a private key that parses. */
export function readPrivateKeyFile(file: string, context: KeyFileContext): KeyObject {
  const text = readPemFile(file, context);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw invalid(file, `holds no private key (it holds ${pemKinds(text)})`, context);
  }
  try {
    return createPrivateKey(text);
  } catch {
    throw invalid(file, "holds a private key block that does not parse (encrypted keys are not supported)", context);
  }
}

/** A public key PEM (or the public half of a private key PEM); undefined when the text holds neither. */
export function publicKeyOf(text: string): KeyObject | undefined {
  try {
    return createPublicKey(text);
  } catch {
    return undefined;
  }
}

/** The key must be the one the certificate was issued for. */
export function assertKeyMatches(
  cert: X509Certificate,
  certFile: string,
  key: KeyObject,
  keyFile: string,
  context: KeyFileContext,
): void {
  if (!cert.checkPrivateKey(key)) throw invalid(keyFile, `is not the key of the certificate ${certFile}`, context);
}

/** What a PEM file holds, for an error message: "a PRIVATE KEY", "a PUBLIC KEY and a CERTIFICATE". */
function pemKinds(text: string): string {
  const kinds = [...new Set([...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]))];
  return kinds.map((k) => `a ${k}`).join(" and ");
}

function iso(date: string): string {
  return new Date(date).toISOString();
}
