/**
 * The part of noble's object model the BLE link uses, typed structurally: noble's own
 * declarations type the module as free functions, while the link holds an instance (the system
 * one, or one built on emulated bindings in tests).
 */
import type { EventEmitter } from "node:events";

/** noble callbacks pass an `Error` or a string on failure, and `null`/`undefined` on success. */
export type NobleError = Error | string | null | undefined;

export interface NobleAdvertisement {
  localName?: string;
  serviceUuids?: string[];
  serviceData?: { uuid: string; data: Buffer }[];
}

export interface NobleCharacteristic extends EventEmitter {
  uuid: string;
  read(callback: (error: NobleError, data: Buffer) => void): void;
  subscribe(callback: (error: NobleError) => void): void;
}

export interface NobleService extends EventEmitter {
  uuid: string;
  discoverCharacteristics(
    uuids: string[],
    callback: (error: NobleError, characteristics: NobleCharacteristic[]) => void,
  ): void;
}

export interface NoblePeripheral extends EventEmitter {
  id: string;
  address: string;
  advertisement: NobleAdvertisement;
  state: string;
  connect(callback: (error: NobleError) => void): void;
  cancelConnect(): void;
  disconnect(callback?: () => void): void;
  discoverServices(uuids: string[], callback: (error: NobleError, services: NobleService[]) => void): void;
}

/** The noble instance: `stateChange`, `discover`, `scanStop` and `warning` events. */
export interface Noble extends EventEmitter {
  /** Reading it initialises the bindings (noble's lazy init). */
  readonly state: string;
  startScanning(serviceUuids: string[], allowDuplicates: boolean, callback: (error: NobleError) => void): void;
  stopScanning(): void;
}
