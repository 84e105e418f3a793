import assert from "node:assert/strict";
import { IoBus } from "./io_bus.ts";
import { IrqLine } from "./irq_line.ts";
import { PCI_CONFIG_PORT, PCI_CONFIG_PORT_COUNT, PciBus } from "./pci_bus.ts";
import { PciConfigSpace } from "./pci_config_space.ts";
import { buildPciPlatform } from "../pci_platform.ts";

function addr(device: number, fn: number, reg: number): number {
  return (0x80000000 | (device << 11) | (fn << 8) | reg) >>> 0;
}

function platform() {
  const io = new IoBus({ log: () => {} });
  const lines = new Map<number, IrqLine>();
  const isa = (n: number) => {
    if (!lines.has(n)) lines.set(n, new IrqLine(`irq${n}`));
    return lines.get(n)!;
  };
  const sent: Uint8Array[] = [];
  const { nics } = buildPciPlatform({
    bus: io,
    isa,
    nics: [{ mac: new Uint8Array([2, 0, 0, 0, 0, 1]), transmit: (f) => sent.push(f) }],
    log: () => {},
  });
  const cfg = (d: number, f: number, reg: number, size: 1 | 2 | 4 = 4) => {
    io.write(0xcf8, addr(d, f, reg & 0xfc), 4);
    return io.read(0xcfc + (reg & 3), size);
  };
  const setCfg = (d: number, f: number, reg: number, v: number, size: 1 | 2 | 4 = 4) => {
    io.write(0xcf8, addr(d, f, reg & 0xfc), 4);
    io.write(0xcfc + (reg & 3), v, size);
  };
  return { io, isa, nics, sent, cfg, setCfg };
}

Deno.test("PCI mechanism #1 finds the i440FX, the PIIX3 bridge and IDE, and the NE2000", () => {
  const { cfg } = platform();
  const found: string[] = [];
  for (let d = 0; d < 32; d++) {
    for (let f = 0; f < 8; f++) {
      const id = cfg(d, f, 0);
      if (id === 0xffffffff) {
        if (f === 0) break;
        continue;
      }
      const cls = cfg(d, f, 8) >>> 8;
      found.push(
        `${d}.${f} ${(id & 0xffff).toString(16)}:${(id >>> 16).toString(16)} ${cls.toString(16)}`,
      );
      if (f === 0 && (cfg(d, 0, 0x0c) & 0x800000) === 0) break; // not multi-function
    }
  }
  assert.deepEqual(found, [
    "0.0 8086:1237 60000",
    "1.0 8086:7000 60100",
    "1.1 8086:7010 10180",
    "1.3 8086:7113 68000",
    "2.0 1234:1111 30000",
    "3.0 10ec:8029 20000",
  ]);
});

Deno.test("PCI config data takes byte, word and dword accesses at 0xCFC-0xCFF", () => {
  const { cfg, io } = platform();
  assert.equal(cfg(3, 0, 0, 2), 0x10ec);
  assert.equal(cfg(3, 0, 2, 2), 0x8029);
  assert.equal(cfg(3, 0, 0x0b, 1), 0x02);
  assert.equal(cfg(3, 0, 0x3d, 1), 1, "INTA#");
  // A byte write to 0xCF8 is not a configuration address; the address reads back whole.
  io.write(0xcf8, addr(3, 0, 0), 4);
  io.write(0xcf8, 0, 1);
  assert.equal(io.read(0xcf8, 4), addr(3, 0, 0));
  // Enable bit clear: nothing answers.
  io.write(0xcf8, 0x00001800, 4);
  assert.equal(io.read(0xcfc, 4), 0xffffffff);
});

Deno.test("PCI BAR sizing: all ones reads back the size mask, then the BAR moves the card", () => {
  const { cfg, setCfg, io } = platform();
  assert.equal(cfg(3, 0, 0x10), 0xc001, "firmware put BAR0 at 0xC000");
  assert.equal(io.read(0xc000 + 0x0a, 1), 0x50, "RTL8029 ID at the BAR");
  setCfg(3, 0, 0x10, 0xffffffff);
  assert.equal(cfg(3, 0, 0x10), 0xffffff01, "256 I/O ports");
  setCfg(3, 0, 0x10, 0xe001);
  assert.equal(cfg(3, 0, 0x10), 0xe001);
  assert.equal(io.read(0xe00a, 1), 0x50);
  assert.equal(io.read(0xc00a, 1), 0xff, "gone from the old address");
  setCfg(3, 0, 0x04, 0, 2); // I/O decoding off
  assert.equal(io.read(0xe00a, 1), 0xff);
  // Read-only registers keep their values.
  setCfg(3, 0, 0x00, 0x12345678);
  assert.equal(cfg(3, 0, 0), 0x802910ec);
  // A BAR that is not there reads 0 and stays 0 when sized.
  setCfg(3, 0, 0x14, 0xffffffff);
  assert.equal(cfg(3, 0, 0x14), 0);
});

Deno.test("PCI memory BAR sizing and the interrupt line register", () => {
  const bus = new PciBus();
  const config = new PciConfigSpace({
    vendorId: 1,
    deviceId: 2,
    classCode: 3,
    subclass: 0,
    bars: [{ index: 1, kind: "memory", size: 0x1000 }],
    interruptPin: 2,
  });
  bus.register({ device: 5, function: 0 }, { name: "t", config });
  assert.throws(() => bus.register({ device: 5, function: 0 }, { name: "u", config }), /taken/);
  bus.write(0, addr(5, 0, 0x14), 4);
  bus.write(4, 0xffffffff, 4);
  assert.equal(bus.read(4, 4), 0xfffff000);
  bus.write(0, addr(5, 0, 0x3c), 4);
  bus.write(4, 0x0b, 1);
  assert.equal(bus.read(4, 2), 0x020b, "line written, pin read-only");
  assert.equal(PCI_CONFIG_PORT_COUNT, 8);
  assert.equal(PCI_CONFIG_PORT, 0xcf8);
});

Deno.test("PCI INTA# of the NIC reaches the ISA IRQ the PIIX3 routes it to", () => {
  const { cfg, setCfg, isa, io } = platform();
  const irq = cfg(3, 0, 0x3c, 1);
  assert.equal(irq, 11, "slot 3 INTA# -> PIRQC -> IRQ 11 as SeaBIOS routes it");
  // Unmask PTX and transmit nothing-sized: ISR.PTX raises the line.
  io.write(0xc000, 0x22, 1); // start
  io.write(0xc00f, 0x02, 1); // IMR = PTX
  io.write(0xc004, 0x40, 1); // TPSR
  io.write(0xc005, 60, 1);
  io.write(0xc000, 0x26, 1); // transmit
  assert.equal(isa(11).level, true);
  // Re-route PIRQC to IRQ 5: the line moves.
  setCfg(1, 0, 0x62, 5, 1);
  assert.equal(isa(11).level, false);
  assert.equal(isa(5).level, true);
  io.write(0xc007, 0x02, 1); // acknowledge
  assert.equal(isa(5).level, false);
});

Deno.test("PCI: random configuration cycles never throw, and the config ports stay put", () => {
  const { io, cfg } = platform();
  let seed = 11;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (let i = 0; i < 20000; i++) {
    const size = ([1, 2, 4] as const)[rnd() % 3];
    const port = 0xcf8 + (rnd() % 8);
    if (rnd() % 3 === 0) io.read(port, size);
    else if (rnd() % 2 === 0) io.write(0xcf8, (0x80000000 | (rnd() & 0x1fffc)) >>> 0, 4);
    else io.write(port, (rnd() * 2654435761) >>> 0, size);
  }
  // Whatever the BARs hold now, mechanism #1 still reaches the host bridge.
  assert.equal(cfg(0, 0, 0), 0x12378086);
});
