import assert from "node:assert/strict";
import { network, readPcap, scenario } from "../mod.ts";
import { checkPingCapture, tsharkSummary } from "./support/net_capture.ts";

export default scenario(
  "two minios machines ping each other through the switch; the capture holds ARP and ICMP",
  async ({ boot }) => {
    const dir = Deno.makeTempDirSync({ prefix: "ring3-net-" });
    const pcap = `${dir}/ping.pcap`;
    const net = network({ pcap });
    const kernel = "fixtures/build/minios.elf";
    try {
      const a = await boot({ kernel, cmdline: "ip=10.0.0.1", nics: [{ network: net }] });
      const b = await boot({ kernel, cmdline: "ip=10.0.0.2", nics: [{ network: net }] });
      await a.console.expect(/net: ne2k_pci irq \d+ mac 52:54:00:12:34:56 ip 10.0.0.1\n/);
      await b.console.expect(/net: ne2k_pci irq \d+ mac 52:54:00:12:34:57 ip 10.0.0.2\n/);
      await a.console.expect("minios$ ", { timeout: "5s" });
      await b.console.expect("minios$ ", { timeout: "5s" });
      a.console.send("lspci\r");
      // What QEMU's pc shows with one ne2k_pci, on either backend.
      await a.console.expect(
        "00:00.0 0600: 8086:1237\n00:01.0 0601: 8086:7000\n00:01.1 0101: 8086:7010\n" +
          "00:01.3 0680: 8086:7113 irq 9\n00:02.0 0300: 1234:1111\n00:03.0 0200: 10ec:8029 irq 11\n",
      );
      await a.console.expect("minios$ ");
      a.console.send("ping 10.0.0.2 3\r");
      await a.console.expect(/0% loss, rtt avg \d+ us\n/, { timeout: "10s" });
      await a.console.expect("minios$ ");
      b.console.send("ping 10.0.0.1 2\r");
      await b.console.expect(/2 sent, 2 received, 0% loss/, { timeout: "10s" });
      net.close();
      const frames = readPcap(Deno.readFileSync(pcap)).frames.map((f) => f.frame);
      checkPingCapture(frames, { a: "10.0.0.1", b: "10.0.0.2", echoes: 5 });
      const summary = await tsharkSummary(pcap);
      if (summary !== null) {
        assert.match(summary, /ARP.*Who has 10\.0\.0\.2\? Tell 10\.0\.0\.1/);
        assert.match(summary, /ICMP.*Echo \(ping\) request/);
        assert.match(summary, /ICMP.*Echo \(ping\) reply/);
      }
    } finally {
      net.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
  // Round-trip times are guest time on each backend's own clock: the transcripts differ there.
  { compareTranscripts: false },
);
