import type { Vm } from "../../mod.ts";

/** Host time between two console lines of a running machine, and everything it printed. */
export interface LineTimer {
  /** Host milliseconds from the start line to the done line, or null if either is missing. */
  readonly ms: number | null;
  /** The console output so far. */
  readonly output: string;
}

/**
 * Times a guest workload by its console: from the first output matching `start` to the first
 * output after it matching `done`, in host time. Output is flushed every few milliseconds, so
 * both ends carry the same small delay.
 *
 * @param vm the machine, just started
 * @param start pattern of the line that opens the measured part
 * @param done pattern of the line that closes it
 * @returns a live view of the measurement
 */
export function timeLines(vm: Vm, start: RegExp, done: RegExp): LineTimer {
  let startMs = 0, doneMs = 0, output = "";
  vm.console.onOutput((text) => {
    output += text;
    if (!startMs && start.test(output)) startMs = performance.now();
    if (startMs && !doneMs && done.test(output)) doneMs = performance.now();
  });
  return {
    get ms() {
      return startMs && doneMs ? doneMs - startMs : null;
    },
    get output() {
      return output;
    },
  };
}
