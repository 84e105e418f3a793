/** Checks on captures shared by the network scenarios (a subfolder: the runner and the scenario test list only top-level files). */
import assert from "node:assert/strict";

function ip(bytes: Uint8Array, at: number): string {
  return [...bytes.subarray(at, at + 4)].join(".");
}

/** Counts of what a capture holds, decoded from the bytes (no tshark needed). */
export function summarize(frames: Uint8Array[]) {
  const out = {
    arpRequests: [] as string[],
    arpReplies: [] as string[],
    echoRequests: 0,
    echoReplies: 0,
  };
  for (const f of frames) {
    const type = (f[12] << 8) | f[13];
    if (type === 0x0806) {
      const op = (f[20] << 8) | f[21];
      const line = `${ip(f, 28)} -> ${ip(f, 38)}`;
      (op === 1 ? out.arpRequests : out.arpReplies).push(line);
    } else if (type === 0x0800 && f[23] === 1) {
      const ihl = (f[14] & 15) * 4;
      const icmpType = f[14 + ihl];
      if (icmpType === 8) out.echoRequests++;
      if (icmpType === 0) out.echoReplies++;
    }
  }
  return out;
}

/** The frames two machines pinging each other must leave in a capture. */
export function checkPingCapture(
  frames: Uint8Array[],
  o: { a: string; b: string; echoes: number },
): void {
  const s = summarize(frames);
  assert.ok(s.arpRequests.includes(`${o.a} -> ${o.b}`), `no ARP request: ${JSON.stringify(s)}`);
  assert.ok(s.arpReplies.includes(`${o.b} -> ${o.a}`), `no ARP reply: ${JSON.stringify(s)}`);
  assert.equal(s.echoRequests, o.echoes, `echo requests: ${JSON.stringify(s)}`);
  assert.equal(s.echoReplies, o.echoes, `echo replies: ${JSON.stringify(s)}`);
}

/**
 * tshark's one-line summary of a capture, or null when tshark is not installed (the caller
 * then relies on its own decoding; a line says so).
 */
export async function tsharkSummary(path: string): Promise<string | null> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("tshark", { args: ["-r", path], stdout: "piped", stderr: "piped" })
      .output();
  } catch {
    console.log("tshark not installed: capture checked by ring3's own pcap reader only");
    return null;
  }
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, `tshark could not read ${path}: ${new TextDecoder().decode(out.stderr)}`);
  return text;
}
