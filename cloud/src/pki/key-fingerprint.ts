import { createHash, X509Certificate } from "node:crypto";

/** SHA-256 of a public key's DER SubjectPublicKeyInfo, in hex: what the registry stores per certificate. */
export function publicKeyFingerprint(spkiDer: Uint8Array): string {
  return createHash("sha256").update(spkiDer).digest("hex");
}

/** The fingerprint of the key a stored certificate was issued for (rows older than the stored column). */
export function certificateKeyFingerprint(pem: string): string {
  return publicKeyFingerprint(new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" }));
}
