/**
 * The ACPI power-management register block of a PIIX4, as QEMU's pc machine places it (PM base
 * 0x600): PM1a event (status/enable), PM1a control, and the PM timer, a 24-bit counter at
 * 3.579545 MHz read at base + 8 (port 0x608). The timer runs on guest time, so a kernel that
 * calibrates against it measures the same virtual clock as every other ring3 device.
 *
 * Offsets and bits follow the ACPI specification (4.8.3 "PM1 Event Grouping", 4.8.3.3 "Power
 * Management Timer"); QEMU's hw/acpi/core.c is the reference for what a write does.
 *
 * @module
 */

import type { DeviceClock } from "./device_clock.ts";
import type { AccessSize, PortDevice } from "./port_device.ts";

/** PM timer frequency, Hz. */
export const PM_TIMER_HZ = 3579545;
/** Ports the block decodes (QEMU's PIIX4 PM I/O region is 64 bytes). */
export const ACPI_PM_PORT_COUNT = 0x40;

/** Register offsets from the PM base. */
export const PM_REG = {
  /** PM1a_EVT_BLK: PM1 status (2 bytes, write 1 to clear). */
  PM1_STS: 0x00,
  /** PM1 enable (2 bytes). */
  PM1_EN: 0x02,
  /** PM1a_CNT_BLK: PM1 control (2 bytes). */
  PM1_CNT: 0x04,
  /** PM_TMR_BLK: the timer (4 bytes, read-only, 24 bits). */
  PM_TMR: 0x08,
} as const;

/** PM1 control bits. */
export const PM1_CNT = {
  SCI_EN: 0x0001,
  SLP_TYP_SHIFT: 10,
  SLP_EN: 0x2000,
} as const;

/** The counter value at guest time `ns`: 24 bits, wrapping every 4.69 s. */
export function pmTimerAt(ns: number): number {
  return Math.floor((ns * PM_TIMER_HZ) / 1e9) % 0x1000000;
}

/** Options of {@linkcode AcpiPm}. */
export interface AcpiPmOptions {
  clock: DeviceClock;
  /** The guest entered a sleep state (SLP_EN with a type; S5 is power-off). */
  onSleep?: (type: number) => void;
  log?: (message: string) => void;
}

/**
 * The PM register block.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AcpiPm } from "./acpi_pm.ts";
 * import { ManualClock } from "./device_clock.ts";
 * const clock = new ManualClock();
 * const pm = new AcpiPm({ clock });
 * clock.advance(1e9);
 * assert.equal(pm.read(8, 4), 3579545);
 * ```
 */
export class AcpiPm implements PortDevice {
  readonly name = "acpi-pm@0x600";
  #sts = 0;
  #en = 0;
  #cnt = 0;
  readonly #o: AcpiPmOptions;

  /** @param o the clock and callbacks */
  constructor(o: AcpiPmOptions) {
    this.#o = o;
  }

  reset(): void {
    this.#sts = 0;
    this.#en = 0;
    this.#cnt = 0;
  }

  read(offset: number, _size: AccessSize): number {
    const tmr = pmTimerAt(this.#o.clock.now());
    const word = (v: number, base: number) => (v >>> ((offset - base) * 8));
    if (offset >= PM_REG.PM_TMR && offset < PM_REG.PM_TMR + 4) return word(tmr, PM_REG.PM_TMR);
    if (offset >= PM_REG.PM1_CNT && offset < PM_REG.PM1_CNT + 2) {
      return word(this.#cnt, PM_REG.PM1_CNT);
    }
    if (offset >= PM_REG.PM1_STS && offset < PM_REG.PM1_STS + 4) {
      return word(this.#sts | (this.#en << 16), PM_REG.PM1_STS);
    }
    return 0;
  }

  write(offset: number, value: number, size: AccessSize): void {
    if (offset === PM_REG.PM1_STS) {
      this.#sts &= ~value & 0xffff;
      if (size === 4) this.#en = (value >>> 16) & 0xffff;
    } else if (offset === PM_REG.PM1_EN) {
      this.#en = value & 0xffff;
    } else if (offset === PM_REG.PM1_CNT) {
      this.#cnt = value & ~PM1_CNT.SLP_EN & 0xffff;
      if (value & PM1_CNT.SLP_EN) {
        const type = (value >> PM1_CNT.SLP_TYP_SHIFT) & 7;
        if (this.#o.onSleep) this.#o.onSleep(type);
        else this.#o.log?.(`acpi-pm: sleep type ${type} requested: not modelled`);
      }
    } else {
      this.#o.log?.(
        `acpi-pm: write of 0x${value.toString(16)} at +0x${offset.toString(16)} ignored`,
      );
    }
  }
}
