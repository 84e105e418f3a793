/**
 * The PC board: where each device sits on the I/O bus and how the interrupt lines are wired,
 * as QEMU's `pc` machine presents them (ports and IRQs of the ISA legacy devices). Devices only
 * see their own registers and lines; the board decides placement.
 *
 * @module
 */
import type { IoBus } from "./devices/io_bus.ts";
import type { IrqLine } from "./devices/irq_line.ts";
import type { DeviceClock } from "./devices/device_clock.ts";
import { Pic8259Pair } from "./devices/i8259.ts";
import { PcSpeakerPort, Pit8254 } from "./devices/i8254.ts";
import { cmosMemorySizes, CmosRtc } from "./devices/mc146818.ts";
import { Uart16550, UART_PORT_COUNT } from "./devices/uart16550.ts";
import { DebugExit } from "./devices/debug_exit.ts";
import { IrqLine as Line } from "./devices/irq_line.ts";
import { MmioBus } from "./devices/mmio_bus.ts";
import { LOCAL_APIC_DEFAULT_BASE, LocalApic } from "./devices/local_apic.ts";
import { IoApic, IOAPIC_DEFAULT_BASE } from "./devices/ioapic.ts";
import { buildPciPlatform, type NicOptions } from "./pci_platform.ts";
import type { Ne2000 } from "./devices/ne2000.ts";
import type { BlockBackend } from "./devices/block_backend.ts";
import { buildAtaChannel } from "./devices/ata_board.ts";
import { LAPIC_REG } from "./devices/local_apic.ts";
import type { EventRegistry } from "./event_kinds.ts";
import { I8042 } from "./devices/i8042.ts";
import { VgaCrtc } from "./devices/vga_crtc.ts";
import { ACPI_PM_PORT_COUNT, AcpiPm } from "./devices/acpi_pm.ts";
import { ResetControl } from "./devices/reset_control.ts";

/** Port bases and IRQ numbers of the board (PC/AT conventions). */
export const PC_LAYOUT = {
  PIC_MASTER: 0x20,
  PIC_SLAVE: 0xa0,
  ELCR: 0x4d0,
  PIT: 0x40,
  SPEAKER: 0x61,
  RTC: 0x70,
  COM1: 0x3f8,
  /** COM1..COM4 and their IRQs (COM1/COM3 share IRQ 4, COM2/COM4 IRQ 3). */
  COM: [0x3f8, 0x2f8, 0x3e8, 0x2e8],
  IRQ_COM: [4, 3, 4, 3],
  KBD_DATA: 0x60,
  KBD_CONTROL: 0x64,
  IRQ_KBD: 1,
  VGA_CRTC: 0x3d4,
  VGA_STATUS: 0x3da,
  /** The PIIX4 ACPI PM block (PM timer at +8), where QEMU's SeaBIOS puts it. */
  ACPI_PM: 0x600,
  RESET_CONTROL: 0xcf9,
  /** QEMU's isa-debug-exit as the fixtures and scenarios use it (iobase=0xf4, iosize=4). */
  DEBUG_EXIT: 0xf4,
  IRQ_PIT: 0,
  IRQ_COM1: 4,
  IRQ_RTC: 8,
  /** The legacy IDE channels of QEMU's PIIX3: command block, control block, IRQ. */
  ATA_PRIMARY: 0x1f0,
  ATA_PRIMARY_CONTROL: 0x3f6,
  ATA_SECONDARY: 0x170,
  ATA_SECONDARY_CONTROL: 0x376,
  IRQ_ATA_PRIMARY: 14,
  IRQ_ATA_SECONDARY: 15,
} as const;

/** What the board hands back to the machine. */
export interface PcBoard {
  /** The interrupt controller behind the CPU's INTR pin. */
  interruptController: {
    /** The INTA cycle: the vector to deliver. */
    acknowledge(): number;
    /** The pending interrupt is lost before the CPU takes it; returns its vector, if any. */
    discard(): number | null;
  };
  /** COM1, the console. */
  com1: Uart16550;
  /** COM1..COM4 (index 0 is COM1). */
  serial: Uart16550[];
  /** The keyboard controller. */
  keyboard: I8042;
  /** The text adapter's CRT controller (the text itself is RAM at 0xB8000). */
  crtc: VgaCrtc;
  /** Device memory: the local APIC and the IOAPIC. */
  mmio: MmioBus;
  /** The line a scenario drives to inject ISA interrupt `n` (ORed with the device's own). */
  injectIrq(n: number): IrqLine;
  /** The network cards, in the order of {@link PcBoardOptions.nics}. */
  nics: Ne2000[];
}

/** What the board is built from. */
export interface PcBoardOptions {
  bus: IoBus;
  clock: DeviceClock;
  /** The CPU's INTR pin. */
  intr: IrqLine;
  ramBytes: number;
  /** The machine's timeline event kinds: the board registers those of its devices. */
  events: EventRegistry;
  /** Console output bytes. */
  transmit: (byte: number) => void;
  /** Output bytes of COM2..COM4 (`line` 2..4); default: dropped. */
  transmitSerial?: (line: number, byte: number) => void;
  /** The guest asked for a reset (i8042 0xFE, 0xCF9). */
  reset?: (reason: string) => void;
  /** isa-debug-exit: the status QEMU would exit with, (v << 1) | 1. */
  exit: (status: number) => void;
  log: (message: string) => void;
  /** Network cards (NE2000 on PCI) to add; default none. */
  nics?: NicOptions[];
  /** The disk at ATA position 0..3 (primary master, primary slave, secondary master, slave). */
  disk?: (index: number) => BlockBackend | undefined;
}

/**
 * Builds the legacy PC devices and wires them.
 *
 * @param o the bus, clock, CPU pin and host-side callbacks
 * @returns the interrupt controller and the console UART
 */
export function buildPcBoard(o: PcBoardOptions): PcBoard {
  const L = PC_LAYOUT;
  // INTR is the OR of the 8259's output (the local APIC's virtual wire) and the local APIC's.
  const picOut = new Line("pic-intr");
  const apicOut = new Line("lapic-intr");
  const updateIntr = () => o.intr.set(picOut.level || apicOut.level);
  picOut.connect(updateIntr);
  apicOut.connect(updateIntr);
  const pic = new Pic8259Pair({ intr: picOut, log: o.log });
  // Declared before use in the closures below; both exist before any interrupt can happen.
  let ioapic: IoApic | null = null;
  const lapic = new LocalApic({
    clock: o.clock,
    intr: apicOut,
    onLevelEoi: (vector) => ioapic?.endOfInterrupt(vector),
    log: o.log,
  });
  ioapic = new IoApic({
    deliver: (vector, level, destination, logical) => {
      if (lapic.matchesDestination(destination, logical)) {
        lapic.acceptInterrupt(vector, level);
      }
    },
    log: o.log,
  });
  const mmio = new MmioBus(o.log);
  mmio.attach(LOCAL_APIC_DEFAULT_BASE, lapic);
  mmio.attach(IOAPIC_DEFAULT_BASE, ioapic);
  const io = ioapic;
  // Each ISA interrupt line goes to the 8259 input of the same number and to the IOAPIC pin
  // QEMU's pc machine wires it to (IRQ0 on pin 2, the others on their own number).
  // A device's line and the scenario's injected line for the same IRQ are ORed, as two open-
  // collector drivers on one ISA interrupt line would be.
  const devices = new Map<number, IrqLine>();
  const injected = new Map<number, IrqLine>();
  const wire = (n: number) => {
    if (devices.has(n)) return;
    const dev = new Line(`isa-irq${n}`);
    const inj = new Line(`injected-irq${n}`);
    const toPic = pic.input(n);
    const toIoApic = io.input(n === 0 ? 2 : n);
    const update = () => {
      const level = dev.level || inj.level;
      toPic.set(level);
      toIoApic.set(level);
    };
    dev.connect(update);
    inj.connect(update);
    devices.set(n, dev);
    injected.set(n, inj);
  };
  const isa = (n: number): IrqLine => {
    wire(n);
    return devices.get(n)!;
  };
  o.bus.attach(L.PIC_MASTER, 2, pic.master);
  o.bus.attach(L.PIC_SLAVE, 2, pic.slave);
  o.bus.attach(L.ELCR, 2, pic.elcr);
  const pit = new Pit8254({ clock: o.clock, irq0: isa(L.IRQ_PIT) });
  o.bus.attach(L.PIT, 4, pit);
  o.bus.attach(L.SPEAKER, 1, new PcSpeakerPort({ pit, clock: o.clock }));
  const rtc = new CmosRtc({
    clock: o.clock,
    irq8: isa(L.IRQ_RTC),
    memory: cmosMemorySizes(o.ramBytes),
  });
  o.bus.attach(L.RTC, 2, rtc);
  // Two UARTs share each of IRQ 3 and 4: each drives its own line, ORed onto the ISA line.
  const serial = L.COM.map((base, i) => {
    const own = new Line(`com${i + 1}-irq`);
    const shared = L.COM.map((_, j) => j).filter((j) => L.IRQ_COM[j] === L.IRQ_COM[i]);
    const uart = new Uart16550({
      name: `com${i + 1}`,
      irq: own,
      transmit: i === 0 ? o.transmit : (byte) => o.transmitSerial?.(i + 1, byte),
    });
    o.bus.attach(base, UART_PORT_COUNT, uart);
    return { uart, own, shared };
  });
  for (const { own, shared } of serial) {
    const line = isa(L.IRQ_COM[shared[0]]);
    own.connect(() => line.set(shared.some((j) => serial[j].own.level)));
  }
  const com1 = serial[0].uart;
  const reset = (reason: string) => o.reset ? o.reset(reason) : o.log(`reset ignored: ${reason}`);
  const keyboard = new I8042({ irq1: isa(L.IRQ_KBD), onReset: reset, log: o.log });
  o.bus.attach(L.KBD_DATA, 1, keyboard.data);
  o.bus.attach(L.KBD_CONTROL, 1, keyboard.control);
  const crtc = new VgaCrtc();
  o.bus.attach(L.VGA_CRTC, 2, crtc.ports);
  o.bus.attach(L.VGA_STATUS, 1, crtc.status);
  o.bus.attach(L.ACPI_PM, ACPI_PM_PORT_COUNT, new AcpiPm({ clock: o.clock, log: o.log }));
  // Both IDE channels exist whether or not a disk is attached, as on QEMU's pc machine.
  for (
    const [n, base, control, irq] of [
      [0, L.ATA_PRIMARY, L.ATA_PRIMARY_CONTROL, L.IRQ_ATA_PRIMARY],
      [1, L.ATA_SECONDARY, L.ATA_SECONDARY_CONTROL, L.IRQ_ATA_SECONDARY],
    ] as const
  ) {
    const ch = buildAtaChannel(n, isa(irq), o.clock, (i) => o.disk?.(i), o.log);
    o.bus.attach(base, ch.ports, ch.channel);
    o.bus.attach(control, 1, ch.channel.control);
  }
  o.bus.attach(L.DEBUG_EXIT, 4, new DebugExit({ onExit: (status) => o.exit(status & 0xff) }));
  const interruptController = {
    acknowledge: () => lapic.hasInterrupt() ? lapic.acknowledge() : pic.acknowledge(),
    discard: () => {
      if (!lapic.hasInterrupt()) return pic.discard();
      // The local APIC has no way to lose an accepted interrupt: take it and retire it.
      const vector = lapic.acknowledge();
      lapic.write(LAPIC_REG.EOI, 0, 4);
      return vector;
    },
  };
  const injectIrq = (n: number): IrqLine => {
    if (!Number.isInteger(n) || n < 0 || n > 15) throw new RangeError(`no ISA IRQ ${n} (0..15)`);
    wire(n);
    return injected.get(n)!;
  };
  o.events.register({
    kind: "irq",
    owner: "pc-board",
    summary: 'line: 0..15, action: "raise" | "lower" | "pulse" (default pulse)',
    apply: (e) => {
      const line = injectIrq(Number(e.line));
      const action = String(e.action ?? "pulse");
      if (action === "raise") line.raise();
      else if (action === "lower") line.lower();
      else if (action === "pulse") line.pulse();
      else throw new RangeError(`irq action must be raise, lower or pulse, not "${action}"`);
      return `line ${e.line} ${action}`;
    },
  });
  o.events.register({
    kind: "spurious",
    owner: "pc-board",
    summary: "irq: 7 (master 8259, default) | 15 (slave 8259)",
    apply: (e) => `IRQ${e.irq ?? 7}: ${pic.spurious(Number(e.irq ?? 7))}`,
  });
  // The PCI configuration ports 0xCF8-0xCFF hold the reset control register's byte at 0xCF9.
  const { nics } = buildPciPlatform({
    bus: o.bus,
    isa,
    nics: o.nics ?? [],
    log: o.log,
    resetControl: new ResetControl(reset),
  });
  return {
    interruptController,
    com1,
    serial: serial.map((s) => s.uart),
    keyboard,
    crtc,
    mmio,
    injectIrq,
    nics,
  };
}
