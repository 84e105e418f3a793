/**
 * `deno task scenario NAME|GLOB... [--jobs N] [--reporter pretty|tap|junit|json] [--seed N]
 * [--artifacts DIR] | --list`: runs scenarios from scenarios/NAME.ts (see
 * runtime/harness/runner.ts). The exit status is 0 when every selected scenario passed or was
 * skipped, 1 when one failed, 2 for a usage error.
 *
 * @module
 */
import { main } from "../runtime/harness/runner.ts";

const encoder = new TextEncoder();
const write = (stream: { writeSync(p: Uint8Array): number }) => (text: string) => {
  const bytes = encoder.encode(text);
  for (let off = 0; off < bytes.length;) off += stream.writeSync(bytes.subarray(off));
};

const status = await main(Deno.args, new URL("../scenarios/", import.meta.url), {
  out: write(Deno.stdout),
  err: write(Deno.stderr),
});
Deno.exit(status);
