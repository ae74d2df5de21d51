import { createPublicKey, type KeyObject } from "node:crypto";
import { FieldgateError } from "@fieldgate/shared";

/**
 * Reads a factory identity public key from a CSV cell: SPKI PEM (a quoted multi-line cell, or one
 * line with `\n` escapes) or the bare base64 of the DER, which fits a spreadsheet cell. Only the
 * keys enrollment verifies are accepted (P-256, Ed25519). Returns the key as SPKI PEM.
 */
export function normalizeFactoryKey(cell: string, field: string): string {
  const text = cell.trim().replace(/\\n/g, "\n");
  if (text.includes("PRIVATE KEY")) {
    // createPublicKey would quietly derive the public half; a private key in a CSV is a leak to flag.
    throw new FieldgateError("VALIDATION_FAILED", `${field} holds a private key; give only the public key`, field);
  }
  let key: KeyObject;
  try {
    key = text.startsWith("-----BEGIN")
      ? createPublicKey(text)
      : createPublicKey({ key: Buffer.from(text.replace(/\s+/g, ""), "base64"), format: "der", type: "spki" });
  } catch {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `${field} is not a public key: give SPKI PEM or the base64 of its DER`,
      field,
    );
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (!(key.asymmetricKeyType === "ed25519" || (key.asymmetricKeyType === "ec" && curve === "prime256v1"))) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `${field} must be a P-256 or Ed25519 public key, not ${key.asymmetricKeyType}${curve ? ` ${curve}` : ""}`,
      field,
    );
  }
  return key.export({ type: "spki", format: "pem" }).toString();
}
