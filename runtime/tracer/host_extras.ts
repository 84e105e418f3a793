/**
 * The mappings the host kernel gives every process besides the stub's own pages: its initial
 * stack, the vDSO and its data pages. A 64-bit guest's native code could read or write them
 * without a fault (ring3 refuses guest page tables that map that range, but an access through no
 * mapping at all would still find them), and the stub never uses them after its start: injected
 * system calls run at its gadget without a stack, and no signal handler ever runs. So they go.
 *
 * @module
 */
import type { PtraceProcess } from "./ptrace_process.ts";
import { SYSCALL } from "../host/layouts.ts";
import { HostError } from "../host/host_error.ts";

const EXTRAS = /\[(stack|vdso|vvar|vvar_vclock)\]\s*$/;

/**
 * Unmaps the stack, vDSO and vvar mappings of a stopped stub process.
 *
 * @param proc the stub process, stopped under the tracer
 * @returns the names of the mappings removed
 * @throws {HostError} when the host refuses the munmap
 */
export function unmapHostExtras(proc: PtraceProcess): string[] {
  const removed: string[] = [];
  for (const line of Deno.readTextFileSync(`/proc/${proc.pid}/maps`).split("\n")) {
    const m = EXTRAS.exec(line);
    if (m === null) continue;
    const [start, end] = line.split(" ")[0].split("-").map((h) => parseInt(h, 16));
    if (!(end > start) || end > 2 ** 47) continue;
    const r = proc.inject(SYSCALL.munmap, start, end - start);
    if (r < 0n) throw new HostError("munmap (in guest process)", Number(-r), `[${m[1]}]`);
    removed.push(m[1]);
  }
  return removed;
}
