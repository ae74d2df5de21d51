// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API
// loaded first (see its README, "Reflect Polyfill Required"). Import x509 only through this module.
import "reflect-metadata";

export * from "@peculiar/x509";

/**
 * The signed part of a DER PKCS#10 request, its CertificationRequestInfo: the first element of the
 * outer SEQUENCE (RFC 2986 §4). @peculiar/x509 keeps it private; node:crypto verifies over it.
 */
export function csrSignedPart(der: Uint8Array): Uint8Array {
  const outer = sequenceHeader(der, 0);
  const info = sequenceHeader(der, outer.contentStart);
  return der.subarray(outer.contentStart, info.contentStart + info.length);
}

function sequenceHeader(der: Uint8Array, at: number): { contentStart: number; length: number } {
  if (der[at] !== 0x30) throw new Error(`expected a DER SEQUENCE at byte ${at}`);
  let length = der[at + 1] ?? 0;
  let contentStart = at + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets < 1 || octets > 3) throw new Error(`unsupported DER length at byte ${at}`);
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + (der[contentStart++] ?? 0);
  }
  if (contentStart + length > der.length) throw new Error(`DER SEQUENCE at byte ${at} runs past the end`);
  return { contentStart, length };
}
