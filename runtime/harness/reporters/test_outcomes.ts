/**
 * Hand-built scenario outcomes for the reporters' tests: a pass, a guest failure, an assertion
 * failure, a skip, and text that is hard to escape.
 *
 * @module
 */
import { AssertionError } from "node:assert/strict";
import type { FailureReport, RunResult, RunStats } from "../../run_result.ts";
import { GuestFailureError } from "../../vm.ts";
import type { ScenarioOutcome } from "../scenario.ts";
import { type RunReport, toScenarioReport } from "./model.ts";

/** Counters of a short run. */
export function stats(guestNs = 2_500_000): RunStats {
  return {
    resumes: 10,
    trapsByCause: { out: 6, in: 4 },
    clockTicks: 0,
    interrupts: 0,
    guestNs,
    hostMs: 12.5,
  };
}

/** A machine that exited with `code`. */
export function exited(code: number): RunResult {
  return { outcome: "exit", exitCode: code, stats: stats() };
}

/** A triple fault, as the machine reports one. */
export const tripleFault: FailureReport = {
  kind: "triple-fault",
  message: '#DF while delivering #GP(0x0) <&> "quoted"',
  instruction: { bytes: "0f 01 18", text: "lidt (%eax)" },
  rip: "00100a3c",
  mode: "protected mode, 32-bit, CPL 0, IF=0",
  lastConsoleLines: ["boom kernel", "about to # fault \\ here", "esc \x1b[31mred\x1b[0m"],
  guestNs: 1_000_000,
};

/** A stopped machine (the scenario ended first). */
export function stopped(): RunResult {
  return {
    outcome: "failure",
    failure: {
      kind: "stopped",
      message: "the scenario ended",
      lastConsoleLines: [],
      guestNs: 1,
    },
    stats: stats(1),
  };
}

/** Outcomes by module name: a pass, a guest failure, an assertion, a skip, a duck-typed one. */
export function outcomes(): Record<string, ScenarioOutcome> {
  const duck = Object.assign(new Error("halted: hlt with IF=0\n  rip: 0x00100010"), {
    name: "GuestFailureError",
    report: {
      kind: "halted",
      message: "hlt with IF=0",
      rip: "00100010",
      lastConsoleLines: ["bye"],
      guestNs: 5,
    } satisfies FailureReport,
  });
  return {
    hello: {
      name: "hello echoes a line",
      status: "passed",
      hostMs: 183.25,
      machines: [{
        kernel: "fixtures/build/hello.elf",
        pid: 100,
        transcript: "ring3 hello kernel\n> you typed: hi\n",
        result: exited(5),
      }],
    },
    boom: {
      name: 'boom <triple> & "faults" # not a directive',
      status: "failed",
      error: new GuestFailureError(tripleFault),
      hostMs: 400.125,
      machines: [{
        kernel: "fixtures/build/boom.elf",
        pid: 101,
        transcript: "boom kernel\nabout to # fault \\ here\nesc \x1b[31mred\x1b[0m\r\n\0\ufffe]]>",
        result: { outcome: "failure", failure: tripleFault, stats: stats(1_000_000) },
        logs: ["unhandled port 0x80 <write>"],
      }],
    },
    asserts: {
      name: "asserts on the exit status",
      status: "failed",
      error: new AssertionError({ actual: 23, expected: 5, operator: "strictEqual" }),
      hostMs: 99,
      machines: [
        {
          kernel: "fixtures/build/hello.elf",
          pid: 102,
          transcript: "line 1\nline 2\nbye\n",
          result: exited(23),
        },
      ],
    },
    later: {
      name: "needs QEMU",
      status: "skipped",
      skipReason: "no # QEMU here",
      hostMs: 0,
      machines: [],
    },
    ducked: {
      name: "halts",
      status: "failed",
      error: duck,
      hostMs: 10,
      machines: [{
        kernel: "/abs/path/halt kernel.elf",
        pid: 103,
        transcript: "bye\n",
        result: stopped(),
      }],
    },
  };
}

/**
 * A finished run of the hand-built outcomes, in name order.
 *
 * @param artifactsDir where artifacts would be
 * @returns the run
 */
export function handRun(artifactsDir?: string): RunReport {
  const all = outcomes();
  const selected = Object.keys(all).sort();
  return {
    runId: "20261121T000000Z-beef",
    seed: 42,
    jobs: 2,
    startedAt: "2026-11-21T00:00:00.000Z",
    selected,
    artifactsDir,
    durationMs: 700,
    scenarios: selected.map((id) =>
      toScenarioReport(id, all[id], {
        seed: 42,
        runId: "20261121T000000Z-beef",
        artifactsDir: artifactsDir && `${artifactsDir}/${id}`,
      })
    ),
  };
}
