/**
 * A minimal client of the QEMU Machine Protocol over a UNIX socket: commands one at a time in
 * order, asynchronous events to a listener. What {@link QemuVm} needs to stop a machine, read its
 * guest clock and registers, and learn why it shut down.
 *
 * @module
 */

/** An asynchronous QMP event ("SHUTDOWN", "STOP", …). */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** QEMU answered a command with an error. */
export class QmpError extends Error {
  override name = "QmpError";
  /**
   * @param command the command
   * @param errorClass QMP's error class
   * @param desc QMP's description
   */
  constructor(readonly command: string, readonly errorClass: string, desc: string) {
    super(`QMP ${command}: ${errorClass}: ${desc}`);
  }
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** One QMP connection, in command mode. */
export class QmpClient {
  readonly #conn: Deno.UnixConn;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners: ((e: QmpEvent) => void)[] = [];
  #nextId = 1;
  #closedError: Error | null = null;
  /** Resolves when the connection is gone (QEMU exited or {@link close} was called). */
  readonly closed: Promise<void>;

  private constructor(conn: Deno.UnixConn, greeting: (g: unknown) => void) {
    this.#conn = conn;
    this.closed = this.#readLoop(greeting);
  }

  /**
   * Connects to QEMU's QMP socket, retrying while the socket does not exist yet, and leaves
   * capabilities negotiation mode.
   *
   * @param path the socket's path
   * @param options `timeoutMs` (host time, default 10000); `gone` resolves if QEMU exits first
   * @returns the client
   * @throws {Error} when QEMU never listens, or exits first
   */
  static async connect(
    path: string,
    options: { timeoutMs?: number; gone?: Promise<unknown> } = {},
  ): Promise<QmpClient> {
    const deadline = performance.now() + (options.timeoutMs ?? 10000);
    let exited = false;
    options.gone?.then(() => exited = true, () => exited = true);
    for (;;) {
      if (exited) throw new Error("QEMU exited before its QMP socket accepted a connection");
      let client: QmpClient | null = null;
      try {
        const conn = await Deno.connect({ transport: "unix", path });
        let greeted!: (g: unknown) => void;
        const greeting = new Promise((r) => greeted = r);
        client = new QmpClient(conn, greeted);
        await Promise.race([greeting, client.closed]);
        await client.execute("qmp_capabilities");
        return client;
      } catch (e) {
        client?.close();
        if (performance.now() > deadline) {
          throw new Error(`cannot connect to QEMU's QMP socket ${path}: ${(e as Error).message}`, {
            cause: e,
          });
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  /**
   * Calls `listener` with every event.
   *
   * @param listener receives events in arrival order
   */
  onEvent(listener: (e: QmpEvent) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Runs a command.
   *
   * @param command e.g. "query-status"
   * @param args its arguments
   * @returns the command's "return" value
   * @throws {QmpError} when QEMU reports an error
   * @throws {Error} when the connection is closed
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const id = this.#nextId++;
    const p = new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
    });
    const line = JSON.stringify(
      args ? { execute: command, arguments: args, id } : {
        execute: command,
        id,
      },
    ) + "\n";
    this.#write(line).catch((e) => this.#fail(e as Error));
    return p;
  }

  /**
   * Runs a human monitor (HMP) command through QMP.
   *
   * @param commandLine e.g. "info registers"
   * @returns its text output
   */
  hmp(commandLine: string): Promise<string> {
    return this.execute<string>("human-monitor-command", { "command-line": commandLine });
  }

  /** Closes the connection (QEMU keeps running). */
  close(): void {
    this.#fail(new Error("QMP connection closed"));
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  #writing: Promise<void> = Promise.resolve();

  #write(line: string): Promise<void> {
    const bytes = new TextEncoder().encode(line);
    this.#writing = this.#writing.then(async () => {
      let off = 0;
      while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
    });
    return this.#writing;
  }

  #fail(e: Error): void {
    if (!this.#closedError) this.#closedError = e;
    for (const p of this.#pending.values()) p.reject(this.#closedError);
    this.#pending.clear();
  }

  async #readLoop(greeting: (g: unknown) => void): Promise<void> {
    const decoder = new TextDecoder();
    let buf = "";
    const chunk = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        buf += decoder.decode(chunk.subarray(0, n), { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) this.#dispatch(JSON.parse(line), greeting);
        }
      }
    } catch (e) {
      if (!this.#closedError) this.#fail(new Error(`QMP connection lost: ${(e as Error).message}`));
    }
    this.#fail(new Error("QMP connection closed (QEMU exited)"));
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  #dispatch(m: Record<string, unknown>, greeting: (g: unknown) => void): void {
    if ("QMP" in m) {
      greeting(m.QMP);
      return;
    }
    if (typeof m.event === "string") {
      for (const l of this.#listeners) l(m as unknown as QmpEvent);
      return;
    }
    const p = this.#pending.get(m.id as number);
    if (!p) return;
    this.#pending.delete(m.id as number);
    if ("error" in m) {
      const err = m.error as { class: string; desc: string };
      p.reject(new QmpError(p.command, err.class, err.desc));
    } else {
      p.resolve(m.return);
    }
  }
}
