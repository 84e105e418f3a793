import assert from "node:assert/strict";
import { IoBus } from "./io_bus.ts";
import { CRTC, CURSOR_DISABLE, VgaCrtc } from "./vga_crtc.ts";

function setup() {
  const crtc = new VgaCrtc();
  const bus = new IoBus({ log: () => {} });
  bus.attach(0x3d4, 2, crtc.ports);
  bus.attach(0x3da, 1, crtc.status);
  const set = (i: number, v: number) => {
    bus.write(0x3d4, i, 1);
    bus.write(0x3d5, v, 1);
  };
  return { crtc, bus, set };
}

Deno.test("CRTC cursor location and shape come from registers 0x0A-0x0F", () => {
  const { crtc, bus, set } = setup();
  set(CRTC.CURSOR_HIGH, 0x07);
  set(CRTC.CURSOR_LOW, 0xd0);
  assert.deepEqual(crtc.cursor(), { location: 2000, start: 14, end: 15, visible: true });
  bus.write(0x3d4, CRTC.CURSOR_LOW, 1);
  assert.equal(bus.read(0x3d5, 1), 0xd0, "registers read back");
  set(CRTC.CURSOR_START, CURSOR_DISABLE | 14);
  assert.equal(crtc.cursor().visible, false);
});

Deno.test("CRTC takes index and data in one word write, and the start address", () => {
  const { crtc, bus } = setup();
  bus.write(0x3d4, (0x50 << 8) | CRTC.START_LOW, 2);
  assert.equal(crtc.startAddress(), 0x50);
});

Deno.test("Input status 1 toggles retrace so wait-for-retrace loops end", () => {
  const { bus } = setup();
  const a = bus.read(0x3da, 1) & 8, b = bus.read(0x3da, 1) & 8;
  assert.notEqual(a, b);
});
