/**
 * Runs a fixture kernel under qemu-system-i386 with the devices ring3 also models (COM1 on
 * stdio, isa-debug-exit at 0xf4), for differential comparison. The first step towards the QEMU
 * backend; it is what tests use to check ring3 prints what QEMU prints.
 *
 * @module
 */

/** Options of {@link runQemu}. */
export interface QemuRunOptions {
  kernel: string;
  cmdline?: string;
  /** MiB of RAM (default 64). */
  memoryMiB?: number;
  /** Bytes typed on COM1: at start, or once the output contains {@link inputAfter}. */
  input?: string;
  /**
   * Type the input only after the guest printed this (a prompt). Input piped at start can race
   * a kernel's UART initialisation, which resets the receive FIFO.
   */
  inputAfter?: string;
  /** Host-time limit in ms (QEMU's TCG runs in host time). Default 30000. */
  timeoutMs?: number;
  /** Which QEMU: i386 (default) or x86_64, for kernels that switch to long mode. */
  arch?: "i386" | "x86_64";
  /** QEMU's -cpu model (default QEMU's own: qemu32 or qemu64). "max" has NX on i386. */
  cpu?: string;
}

/** What QEMU printed and how it ended. */
export interface QemuRunResult {
  output: string;
  /** QEMU's exit status: (v << 1) | 1 after an isa-debug-exit write of v. */
  status: number;
  timedOut: boolean;
}

/**
 * The QEMU binary for 32-bit guests (or for `arch`), or null when it is not installed.
 *
 * @param arch which system emulator (default i386)
 */
export function qemuBinary(arch: "i386" | "x86_64" = "i386"): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin").split(":")) {
    try {
      const p = `${dir}/qemu-system-${arch}`;
      if (Deno.statSync(p).isFile) return p;
    } catch { /* not here */ }
  }
  return null;
}

/**
 * Boots a kernel under QEMU (TCG) and collects its serial output.
 *
 * @param options kernel and inputs
 * @returns output and status
 */
export async function runQemu(options: QemuRunOptions): Promise<QemuRunResult> {
  const arch = options.arch ?? "i386";
  const qemu = qemuBinary(arch);
  if (!qemu) throw new Error(`qemu-system-${arch} is not installed`);
  const args = [
    "-kernel",
    options.kernel,
    "-append",
    options.cmdline ?? "",
    "-m",
    String(options.memoryMiB ?? 64),
    "-accel",
    "tcg",
    "-display",
    "none",
    "-monitor",
    "none",
    "-serial",
    "stdio",
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=0x04",
    "-no-reboot",
    ...(options.cpu ? ["-cpu", options.cpu] : []),
  ];
  const child = new Deno.Command(qemu, { args, stdin: "piped", stdout: "piped", stderr: "piped" })
    .spawn();
  const stderr = new Response(child.stderr).text();
  const writer = child.stdin.getWriter();
  let output = "";
  let typed = false;
  const type = async () => {
    if (typed) return;
    typed = true;
    if (options.input) await writer.write(new TextEncoder().encode(options.input)).catch(() => {});
    await writer.close().catch(() => {});
  };
  const stdout = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      output += decoder.decode(chunk, { stream: true });
      if (options.inputAfter !== undefined && output.includes(options.inputAfter)) await type();
    }
  })();
  if (options.inputAfter === undefined) await type();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, options.timeoutMs ?? 30000);
  const status = (await child.status).code;
  clearTimeout(timer);
  await stdout;
  await type();
  await stderr;
  return { output, status, timedOut };
}
