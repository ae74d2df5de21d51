import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { identityPaths } from "../identity/identity-store.js";

/** One unusable key or certificate file: the config key it came from, what is wrong, and the fix. */
export interface KeyFileProblem {
  field: string;
  message: string;
}

/** What `checkKeyFiles` reads: the configured files (absolute) and the data directory. */
export interface KeyFiles {
  caFile?: string | undefined;
  factoryKeyFile?: string | undefined;
  publicKeyFile?: string | undefined;
  dataDir: string;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

function pemBlocks(text: string): { label: string; pem: string }[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => ({ label: m[1] as string, pem: m[0] }));
}

function readText(file: string): string | { error: string } {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  }
}

/**
 * Reads every configured key and certificate file and says what is wrong with each, so a CA file
 * without a certificate is a config error naming the file, not a TLS failure much later. Errors
 * stop the agent; `warnings` (an expired operational certificate, which the agent replaces by
 * enrolling again) do not.
 */
export function checkKeyFiles(files: KeyFiles, now: number): { errors: KeyFileProblem[]; warnings: string[] } {
  const errors: KeyFileProblem[] = [];
  const warnings: string[] = [];
  if (files.caFile) {
    const problem = certificateFileProblem(files.caFile);
    if (problem)
      errors.push({
        field: "cloud.caFile",
        message: `${problem}; set it to the cloud's CA certificate (<cloud data-dir>/pki/ca.crt)`,
      });
    const outside = problem ? undefined : outsideValidity(files.caFile, now);
    if (outside) warnings.push(`cloud.caFile: ${outside}`);
  }
  if (files.factoryKeyFile) {
    const problem = privateKeyFileProblem(files.factoryKeyFile);
    if (problem)
      errors.push({
        field: "enrollment.factoryKeyFile",
        message: `${problem}; point it at the factory key (\`fieldgate-agent factory-key generate --out <file>\` makes one)`,
      });
  }
  if (files.publicKeyFile) {
    const problem = publicKeyFileProblem(files.publicKeyFile);
    if (problem)
      errors.push({
        field: "updates.publicKeyFile",
        message: `${problem}; set it to the firmware public key (PEM, from \`fieldgate-cloud firmware keygen\`) or remove it`,
      });
  }
  identityProblems(files.dataDir, now, errors, warnings);
  return { errors, warnings };
}

/** A file of PEM certificates (a CA): at least one, every one parseable. */
function certificateFileProblem(file: string): string | undefined {
  const text = readText(file);
  if (typeof text !== "string") return `cannot read ${file} (${text.error})`;
  const blocks = pemBlocks(text);
  if (blocks.length === 0) return `${file} is not PEM: it holds no -----BEGIN CERTIFICATE----- block`;
  const certs = blocks.filter((b) => b.label === "CERTIFICATE");
  if (certs.length === 0) return `${file} holds no certificate (found ${blocks.map((b) => b.label).join(", ")})`;
  for (const [i, b] of certs.entries()) {
    try {
      new X509Certificate(b.pem);
    } catch (err) {
      return `certificate ${i + 1} in ${file} cannot be parsed (${(err as Error).message})`;
    }
  }
  return undefined;
}

/**
 * When no certificate of the file is valid now. A warning, not an error: a gateway without a
 * real-time clock boots in 1970 and must still start, sync its clock and connect.
 */
function outsideValidity(file: string, now: number): string | undefined {
  const certs = pemBlocks(readFileSync(file, "utf8"))
    .filter((b) => b.label === "CERTIFICATE")
    .map((b) => new X509Certificate(b.pem));
  if (certs.some((c) => Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo))) return undefined;
  const c = certs[0] as X509Certificate;
  return Date.parse(c.validTo) < now
    ? `the certificate in ${file} expired on ${new Date(c.validTo).toISOString()}; TLS to the cloud will fail until it is replaced with the cloud's current CA certificate`
    : `the certificate in ${file} is not valid before ${new Date(c.validFrom).toISOString()}; is the clock right? (TLS fails until it is)`;
}

function loadPrivateKey(file: string): KeyObject | string {
  const text = readText(file);
  if (typeof text !== "string") return `cannot read ${file} (${text.error})`;
  const blocks = pemBlocks(text);
  if (blocks.length === 0) return `${file} is not PEM: it holds no -----BEGIN PRIVATE KEY----- block`;
  if (!blocks.some((b) => b.label.endsWith("PRIVATE KEY"))) {
    return `${file} holds no private key (found ${blocks.map((b) => b.label).join(", ")})`;
  }
  try {
    return createPrivateKey(text);
  } catch (err) {
    return `the private key in ${file} cannot be read (${(err as Error).message})`;
  }
}

function privateKeyFileProblem(file: string): string | undefined {
  const key = loadPrivateKey(file);
  if (typeof key === "string") return key;
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (type === "ed25519" || (type === "ec" && curve === "prime256v1")) return undefined;
  return `the key in ${file} must be P-256 or Ed25519, got ${type}${curve ? ` ${curve}` : ""}`;
}

function publicKeyFileProblem(file: string): string | undefined {
  const text = readText(file);
  if (typeof text !== "string") return `cannot read ${file} (${text.error})`;
  const blocks = pemBlocks(text);
  if (blocks.length === 0) return `${file} is not PEM: it holds no -----BEGIN PUBLIC KEY----- block`;
  // A private key would verify too, but it must not sit on every gateway.
  if (blocks.some((b) => b.label.endsWith("PRIVATE KEY"))) return `${file} holds a private key, not a public key`;
  try {
    createPublicKey(text);
    return undefined;
  } catch (err) {
    return `the public key in ${file} cannot be read (${(err as Error).message})`;
  }
}

/** The stored operational identity, when there is one: its key must match its certificate. */
function identityProblems(dataDir: string, now: number, errors: KeyFileProblem[], warnings: string[]): void {
  const paths = identityPaths(dataDir);
  // identity.json is the commit marker; without it there is no identity to check.
  if (!existsSync(paths.info)) return;
  const cert = identityCertificate(paths);
  if (typeof cert === "string") {
    errors.push({ field: "dataDir", message: `${cert}; run \`fieldgate-agent reset --yes\` and enroll again` });
  } else if (Date.parse(cert.validTo) < now) {
    warnings.push(
      `the device certificate ${paths.cert} expired on ${new Date(cert.validTo).toISOString()}; the agent enrolls again (an operator opens a window with \`fieldgate-cloud devices reset-token\`)`,
    );
  }
}

/** The identity's certificate, or what is wrong with the key, the certificate or the pair. */
function identityCertificate(paths: ReturnType<typeof identityPaths>): X509Certificate | string {
  const key = loadPrivateKey(paths.key);
  if (typeof key === "string") return `the stored identity is broken: ${key}`;
  const certText = readText(paths.cert);
  if (typeof certText !== "string") return `the stored identity is broken: cannot read ${paths.cert}`;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certText);
  } catch {
    return `the stored identity is broken: ${paths.cert} is not a PEM certificate`;
  }
  if (!cert.checkPrivateKey(key)) return `the stored key ${paths.key} does not match its certificate ${paths.cert}`;
  // The broker's trust anchor, stored at enrollment.
  const ca = certificateFileProblem(paths.ca);
  if (ca) return `the stored identity is broken: ${ca}`;
  return cert;
}
