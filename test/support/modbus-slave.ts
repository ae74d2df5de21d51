/**
 * A small Modbus RTU slave for tests, on the simulated end of a pty pair: it answers FC 1-4 from
 * its tables, answers exception 2 (illegal data address) for registers it does not have, stays
 * silent for units in `silent` (the master times out), and can corrupt the CRC of its next answer.
 */
import { SerialPort } from "serialport";

/** CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF). */
export function crc16(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

export function withCrc(body: number[]): Buffer {
  const buf = Buffer.alloc(body.length + 2);
  Buffer.from(body).copy(buf);
  buf.writeUInt16LE(crc16(buf.subarray(0, body.length)), body.length);
  return buf;
}

export interface ModbusSlaveTables {
  holding?: Record<number, number>;
  input?: Record<number, number>;
  coils?: Record<number, boolean>;
  discrete?: Record<number, boolean>;
}

export class ModbusSlave {
  readonly units = new Map<number, ModbusSlaveTables>();
  readonly silent = new Set<number>();
  corruptNext = false;
  /** Garbage bytes to send before the next answer. */
  noiseBeforeNext: Buffer | undefined;
  requests = 0;
  private port: SerialPort | undefined;
  private buffer = Buffer.alloc(0);

  constructor(private readonly path: string) {}

  async open(): Promise<void> {
    const port = new SerialPort({ path: this.path, baudRate: 9600, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    port.on("error", () => {});
    port.on("data", (chunk: Buffer) => this.onData(chunk));
    this.port = port;
    this.buffer = Buffer.alloc(0);
  }

  async close(): Promise<void> {
    const port = this.port;
    this.port = undefined;
    if (!port?.isOpen) return;
    await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= 8) {
      const frame = this.buffer.subarray(0, 8);
      if (frame.readUInt16LE(6) !== crc16(frame.subarray(0, 6))) {
        this.buffer = this.buffer.subarray(1);
        continue;
      }
      this.buffer = this.buffer.subarray(8);
      this.requests += 1;
      const answer = this.answer(frame);
      if (!answer) continue;
      if (this.noiseBeforeNext) {
        this.port?.write(this.noiseBeforeNext);
        this.noiseBeforeNext = undefined;
      }
      if (this.corruptNext) {
        this.corruptNext = false;
        answer[answer.length - 1] = (answer[answer.length - 1] as number) ^ 0xff;
      }
      this.port?.write(answer);
    }
  }

  private answer(frame: Buffer): Buffer | undefined {
    const unit = frame[0] as number;
    const fc = frame[1] as number;
    const address = frame.readUInt16BE(2);
    const quantity = frame.readUInt16BE(4);
    const tables = this.units.get(unit);
    if (!tables || this.silent.has(unit)) return undefined;
    const exception = (code: number) => withCrc([unit, fc | 0x80, code]);
    if (fc === 3 || fc === 4) {
      const table = (fc === 3 ? tables.holding : tables.input) ?? {};
      const words: number[] = [];
      for (let a = address; a < address + quantity; a++) {
        const w = table[a];
        if (w === undefined) return exception(2);
        words.push(w);
      }
      return withCrc([unit, fc, quantity * 2, ...words.flatMap((w) => [(w >> 8) & 0xff, w & 0xff])]);
    }
    if (fc === 1 || fc === 2) {
      const table = (fc === 1 ? tables.coils : tables.discrete) ?? {};
      const bytes = new Array<number>(Math.ceil(quantity / 8)).fill(0);
      for (let i = 0; i < quantity; i++) {
        const bit = table[address + i];
        if (bit === undefined) return exception(2);
        if (bit) bytes[i >> 3] = (bytes[i >> 3] as number) | (1 << (i & 7));
      }
      return withCrc([unit, fc, bytes.length, ...bytes]);
    }
    return exception(1);
  }
}

/** Two 16-bit words of a float32, high word first. */
export function floatWords(value: number): [number, number] {
  const b = Buffer.alloc(4);
  b.writeFloatBE(value, 0);
  return [b.readUInt16BE(0), b.readUInt16BE(2)];
}
