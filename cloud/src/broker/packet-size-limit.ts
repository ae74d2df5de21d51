import type { Client } from "aedes";

/** The part of mqtt-packet's parser this relies on: the remaining length is known after `_parseLength`. */
interface PacketParser {
  packet: { cmd?: string; length: number };
  _parseLength(): boolean;
}

/**
 * Ends a connection whose next packet announces more than `maxBytes`, as soon as its fixed header
 * is read and before its body is buffered: mqtt-packet would otherwise hold the whole packet in
 * memory until it is complete (a 250 MB PUBLISH held 500 MB). aedes offers no limit of its own.
 * `onOversize` runs once, before the socket is destroyed.
 */
export function limitPacketSize(client: Client, maxBytes: number, onOversize: (announced: number) => void): void {
  const parser = (client as unknown as { _parser?: PacketParser })._parser;
  if (typeof parser?._parseLength !== "function") {
    // Fail closed: an upgrade that moved the parser must not silently lift the limit.
    client.conn.destroy(new Error("mqtt-packet's parser changed: the packet size limit cannot be enforced"));
    return;
  }
  const parseLength = parser._parseLength.bind(parser);
  parser._parseLength = () => {
    const done = parseLength();
    if (done && packetSize(parser.packet.length) > maxBytes) {
      parser._parseLength = () => false;
      onOversize(parser.packet.length);
      client.conn.destroy();
      return false;
    }
    return done;
  };
}

/** A whole packet's size from its remaining length: one type byte, 1–4 length bytes, the rest. */
export function packetSize(remainingLength: number): number {
  const lengthBytes = remainingLength < 128 ? 1 : remainingLength < 16_384 ? 2 : remainingLength < 2_097_152 ? 3 : 4;
  return 1 + lengthBytes + remainingLength;
}
