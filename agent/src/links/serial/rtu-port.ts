import { EventEmitter } from "node:events";
import type { RtuFramer } from "./rtu-framer.js";

/** The part of an open serial port the Modbus client needs. */
export interface RawPort {
  readonly isOpen: boolean;
  write(data: Buffer): unknown;
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  off(event: "data", listener: (chunk: Buffer) => void): unknown;
}

/**
 * The port object modbus-serial's `ModbusRTU` drives (it accepts any object with open, close,
 * write, isOpen and a `data` event). It sits on a serial port the link already opened and owns,
 * and hands the client whole frames cut by `RtuFramer`, so the link keeps control of unplugs,
 * reconnects and the byte counts.
 */
export class RtuPort extends EventEmitter {
  private readonly onData = (chunk: Buffer): void => {
    for (const frame of this.framer.push(chunk)) this.emit("data", frame);
  };
  private attached = false;

  constructor(
    private readonly port: RawPort,
    private readonly framer: RtuFramer,
  ) {
    super();
  }

  get isOpen(): boolean {
    return this.attached && this.port.isOpen;
  }

  open(callback?: (err: Error | null) => void): void {
    if (!this.attached) {
      this.port.on("data", this.onData);
      this.attached = true;
    }
    callback?.(null);
  }

  /** Detaches from the serial port; closing it is the link's business. */
  close(callback?: (err?: Error | null) => void): void {
    if (this.attached) this.port.off("data", this.onData);
    this.attached = false;
    this.framer.reset();
    this.emit("close");
    callback?.(null);
  }

  write(data: Buffer): void {
    this.framer.request(data);
    this.port.write(data);
  }
}
