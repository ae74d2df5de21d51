/**
 * Cuts Modbus RTU responses out of a serial byte stream. RTU frames have no delimiter (the
 * specification uses 3.5 character times of silence, which a USB adapter blurs), so the framer
 * knows the request in flight and waits for the answer's length: a normal answer or a 5-byte
 * exception. Bytes before a plausible frame start, or arriving with no request in flight, are
 * garbage: dropped and counted. The buffer never exceeds `MAX_RTU_BUFFER` bytes. The CRC is
 * checked by modbus-serial, which reports a mismatch as an error of the request.
 */

/** The largest RTU frame is 256 bytes (Modbus over serial line 1.02, 2.5.1.1). */
export const MAX_RTU_BUFFER = 256;
const EXCEPTION_LENGTH = 5;

/** What answers the request in flight. */
interface Expected {
  unitId: number;
  functionCode: number;
  length: number;
  /** The byte count field (third byte) of a normal answer. */
  byteCount: number;
}

export class RtuFramer {
  private buffer: Buffer = Buffer.alloc(0);
  private expected: Expected | undefined;
  /** Bytes dropped as garbage since creation. */
  garbageBytes = 0;
  /** Times garbage was dropped (one count per contiguous run). */
  garbageRuns = 0;

  /** Bytes held (at most `MAX_RTU_BUFFER`). */
  get buffered(): number {
    return this.buffer.length;
  }

  /**
   * Tells the framer a request was sent (a read: FC 1-4). Leftover bytes from before belong to
   * no request and are dropped. Other function codes are not framed (their answers count as garbage).
   */
  request(frame: Buffer): void {
    this.drop(this.buffer.length);
    this.expected = undefined;
    if (frame.length < 6) return;
    const unitId = frame[0] as number;
    const functionCode = frame[1] as number;
    const quantity = frame.readUInt16BE(4);
    let byteCount: number;
    if (functionCode === 1 || functionCode === 2) byteCount = Math.ceil(quantity / 8);
    else if (functionCode === 3 || functionCode === 4) byteCount = quantity * 2;
    else return;
    if (byteCount > 250) return;
    this.expected = { unitId, functionCode, byteCount, length: 3 + byteCount + 2 };
  }

  /** Feeds received bytes; returns the frames completed by them (at most one per request). */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length === 0) return [];
    if (!this.expected) {
      this.countGarbage(chunk.length);
      return [];
    }
    this.buffer = this.buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffer, chunk]);
    if (this.buffer.length > MAX_RTU_BUFFER) this.drop(this.buffer.length - MAX_RTU_BUFFER);
    const frame = this.extract();
    return frame ? [frame] : [];
  }

  /** Forgets everything (the port closed). */
  reset(): void {
    this.buffer = Buffer.alloc(0);
    this.expected = undefined;
  }

  private extract(): Buffer | undefined {
    const e = this.expected as Expected;
    const buf = this.buffer;
    for (let i = 0; i + 1 < buf.length; i++) {
      if (buf[i] !== e.unitId) continue;
      const fc = buf[i + 1];
      let length: number | undefined;
      if (fc === (e.functionCode | 0x80)) length = EXCEPTION_LENGTH;
      else if (fc === e.functionCode) {
        // A normal answer repeats the byte count; a mismatch means this is not a frame start.
        if (i + 2 < buf.length && buf[i + 2] !== e.byteCount) continue;
        length = e.length;
      } else continue;
      if (i + length > buf.length) {
        // Plausible but incomplete: keep it (and drop what came before) until more bytes arrive.
        this.drop(i);
        return undefined;
      }
      const frame = Buffer.from(buf.subarray(i, i + length));
      this.drop(i);
      this.buffer = this.buffer.subarray(length);
      this.expected = undefined;
      // What follows the answer belongs to no request.
      this.drop(this.buffer.length);
      return frame;
    }
    // No plausible start except maybe the last byte (a unit id whose function code is still coming).
    const keep = buf.length > 0 && buf[buf.length - 1] === e.unitId ? 1 : 0;
    this.drop(buf.length - keep);
    return undefined;
  }

  private drop(n: number): void {
    if (n <= 0) return;
    this.countGarbage(n);
    this.buffer = this.buffer.subarray(n);
  }

  private countGarbage(n: number): void {
    this.garbageBytes += n;
    this.garbageRuns += 1;
  }
}
