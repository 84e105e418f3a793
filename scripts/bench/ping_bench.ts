/**
 * Ping bench: two minios machines on one ring3 network, `ping 10.0.0.2 N` on the first; the
 * mean of minios's own round-trip times, which it measures in guest time (TSC calibrated on the
 * PIT, and ring3's TSC is guest time). Host time for the whole exchange is reported beside it,
 * as is the wire latency of the network (part of every round trip twice).
 *
 * @module
 */
import { network, Vm } from "../../mod.ts";

/** What {@link pingBench} measured. */
export interface PingBenchResult {
  count: number;
  received: number;
  /** Mean round trip in guest microseconds, as minios printed it. */
  meanRttGuestUs: number;
  minRttGuestUs: number;
  maxRttGuestUs: number;
  /** The network's one-way latency in guest microseconds. */
  wireLatencyUs: number;
  /** Host milliseconds from the command to the summary line. */
  hostMs: number;
  /** Traps of the pinging machine, by cause. */
  trapsByCause: Record<string, number>;
}

/**
 * Runs the bench.
 *
 * @param o how many echoes, and the CPUs of the two machines
 */
export async function pingBench(
  o: { count: number; cpus: [number | undefined, number | undefined] },
): Promise<PingBenchResult> {
  const net = network({ latency: "100us" });
  const kernel = "fixtures/build/minios.elf";
  const a = await Vm.start({
    kernel,
    cmdline: "ip=10.0.0.1",
    nics: [{ network: net }],
    cpu: o.cpus[0],
  });
  const b = await Vm.start({
    kernel,
    cmdline: "ip=10.0.0.2",
    nics: [{ network: net }],
    cpu: o.cpus[1],
  });
  try {
    await a.console.expect("minios$ ", { timeout: "5s" });
    await b.console.expect("minios$ ", { timeout: "5s" });
    // Warm up: ARP and the TSC calibration happen on the first ping.
    a.console.send("ping 10.0.0.2 1\r");
    await a.console.expect(/1 received/, { timeout: "10s" });
    await a.console.expect("minios$ ");
    const t0 = performance.now();
    a.console.send(`ping 10.0.0.2 ${o.count}\r`);
    const summary = await a.console.expect(/(\d+) sent, (\d+) received[^\n]*\n/, {
      timeout: `${o.count + 10}s`,
    });
    const hostMs = performance.now() - t0;
    const text = a.console.transcript;
    const last = text.slice(text.lastIndexOf(`ping 10.0.0.2 ${o.count}`));
    const rtts = [...last.matchAll(/time=(\d+) us/g)].map((m) => Number(m[1]));
    a.console.send("exit 0\r");
    await a.exit();
    const stats = (await a.result()).stats;
    return {
      count: o.count,
      received: Number(summary[2]),
      meanRttGuestUs: +(rtts.reduce((s, x) => s + x, 0) / Math.max(1, rtts.length)).toFixed(1),
      minRttGuestUs: Math.min(...rtts),
      maxRttGuestUs: Math.max(...rtts),
      wireLatencyUs: net.latencyNs / 1e3,
      hostMs: +hostMs.toFixed(1),
      trapsByCause: stats.trapsByCause,
    };
  } finally {
    await a.stop();
    await b.stop();
    net.close();
  }
}
