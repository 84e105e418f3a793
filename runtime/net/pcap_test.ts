import assert from "node:assert/strict";
import { PCAP_MAGIC_NS, pcapFileHeader, PcapWriter, readPcap } from "./pcap.ts";

Deno.test("pcap writer: header fields and records read back with nanosecond stamps", () => {
  const header = new DataView(pcapFileHeader().buffer);
  assert.equal(header.getUint32(0, true), PCAP_MAGIC_NS);
  assert.equal(header.getUint16(4, true), 2);
  assert.equal(header.getUint16(6, true), 4);
  assert.equal(header.getUint32(20, true), 1, "LINKTYPE_ETHERNET");
  const path = Deno.makeTempFileSync({ suffix: ".pcap" });
  try {
    const w = new PcapWriter(path);
    const f1 = new Uint8Array(60).fill(0xab);
    const f2 = new Uint8Array(98).map((_, i) => i);
    w.write(1_500_000_123, f1);
    w.write(2_000_000_000, f2);
    w.close();
    assert.equal(w.frames, 2);
    const bytes = Deno.readFileSync(path);
    assert.equal(bytes.length, 24 + 16 + 60 + 16 + 98);
    const r = readPcap(bytes);
    assert.equal(r.linkType, 1);
    assert.deepEqual(r.frames.map((f) => f.timeNs), [1_500_000_123, 2_000_000_000]);
    assert.deepEqual(r.frames[1].frame, f2);
    assert.throws(() => readPcap(bytes.subarray(0, bytes.length - 1)), /cut short/);
    assert.throws(() => readPcap(new Uint8Array(24)), /not a pcap file/);
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("pcap writer: tshark reads the file (skipped when tshark is absent)", async (t) => {
  const path = Deno.makeTempFileSync({ suffix: ".pcap" });
  try {
    const w = new PcapWriter(path);
    // An ARP request, 10.0.0.1 asking for 10.0.0.2.
    const arp = new Uint8Array(42);
    arp.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 8, 6]);
    arp.set([0, 1, 8, 0, 6, 4, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 10, 0, 0, 1], 14);
    arp.set([0, 0, 0, 0, 0, 0, 10, 0, 0, 2], 32);
    w.write(1000, arp);
    w.close();
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command("tshark", { args: ["-r", path], stdout: "piped" }).output();
    } catch {
      await t.step({ name: "tshark is not installed: skipped", ignore: true, fn() {} });
      return;
    }
    assert.ok(out.success);
    assert.match(new TextDecoder().decode(out.stdout), /Who has 10\.0\.0\.2\? Tell 10\.0\.0\.1/);
  } finally {
    Deno.removeSync(path);
  }
});
