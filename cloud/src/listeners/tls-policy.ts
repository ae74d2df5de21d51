import type { TlsOptions } from "node:tls";

/**
 * The cipher suites both listeners offer: AEAD with forward secrecy only. TLS 1.3 suites are all
 * AEAD with ECDHE; for TLS 1.2, ECDHE with AES-GCM or ChaCha20-Poly1305, so Node's default list's
 * CBC-SHA1 and static-RSA suites are never negotiated.
 */
export const SERVER_CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/** What both the MQTT and the HTTPS listener agree on: protocol floor, suites, handshake time. */
export function serverTlsPolicy(handshakeTimeoutMs: number): TlsOptions {
  return {
    minVersion: "TLSv1.2",
    ciphers: SERVER_CIPHERS,
    honorCipherOrder: true,
    // Node's own timer restarts on every byte; PendingConnections adds a hard deadline.
    handshakeTimeout: handshakeTimeoutMs,
  };
}
