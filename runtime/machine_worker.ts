/// <reference lib="deno.worker" />
/**
 * Worker entry: one machine per Worker, because ptrace requests must come from the thread
 * that attached, and the trap path must not cross threads (ARCHITECTURE.md, "Deno FFI
 * pitfalls"). The Worker owns the tracer, the emulator and the devices; the scenario thread
 * talks to it with the messages in machine_protocol.ts.
 *
 * @module
 */
import { Machine } from "./machine.ts";
import { ImageFormatError } from "./boot/image_error.ts";
import { HostError } from "./host/host_error.ts";
import { StubWindowError } from "./stub_area.ts";
import { DiskFileError } from "./disk/host_disks.ts";
import { Mailbox } from "./mailbox.ts";
import type { BootMessage, FromMachine, ToMachine } from "./machine_protocol.ts";
import { emptyStats, type FailureKind, type RunResult } from "./run_result.ts";

let machine: Machine | null = null;

function post(message: FromMachine): void {
  self.postMessage(message);
}

function failBeforeBoot(kind: FailureKind, message: string): void {
  const result: RunResult = {
    outcome: "failure",
    failure: { kind, message, lastConsoleLines: [], guestNs: 0 },
    stats: emptyStats(),
  };
  post({ type: "ended", result });
  self.close();
}

self.onmessage = (event: MessageEvent<BootMessage>) => {
  const m = event.data;
  if (m.type !== "boot" || machine !== null) return;
  try {
    machine = Machine.boot(m.config, new Mailbox<ToMachine>(m.mailbox), {
      console: (bytes, guestNs) => post({ type: "console", bytes, guestNs }),
      deadline: (id, guestNs) => post({ type: "deadline", id, guestNs }),
      event: (id, applied) => post({ type: "event", id, applied }),
      log: (message) => post({ type: "log", message }),
      frame: (nic, bytes, guestNs) => post({ type: "frame", nic, bytes, guestNs }),
      serial: (line, bytes, guestNs) => post({ type: "serial", line, bytes, guestNs }),
      screen: (screen, guestNs) => post({ type: "screen", screen, guestNs }),
    });
  } catch (e) {
    if (e instanceof ImageFormatError) return failBeforeBoot("image-error", e.message);
    if (e instanceof HostError || e instanceof DiskFileError) {
      return failBeforeBoot("host-error", e.message);
    }
    if (e instanceof StubWindowError) return failBeforeBoot("image-error", e.message);
    return failBeforeBoot("host-error", e instanceof Error ? e.stack ?? e.message : String(e));
  }
  post({ type: "started", pid: machine.pid, ptys: machine.ptys });
  machine.run().then(
    (result) => {
      post({ type: "ended", result });
      self.close();
    },
    (e) => failBeforeBoot("host-error", e instanceof Error ? e.stack ?? e.message : String(e)),
  );
};
