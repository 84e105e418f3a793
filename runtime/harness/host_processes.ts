/**
 * What a test needs to prove that ring3 leaves nothing behind and that guests really run in
 * their own traced host processes: facts read from /proc.
 *
 * @module
 */

/** A few fields of /proc/PID/status and /proc/PID/stat. */
export interface HostProcessInfo {
  pid: number;
  /** Process state letter: R, S, t (tracing stop), Z (zombie), … */
  state: string;
  ppid: number;
  tracerPid: number;
  /** User-mode CPU time in clock ticks. */
  utimeTicks: number;
  /** Target of /proc/PID/exe. */
  exe: string;
}

/**
 * Reads a process's facts, or null when it does not exist.
 *
 * @param pid the process
 * @returns the facts
 */
export function hostProcess(pid: number): HostProcessInfo | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)`, "m").exec(status)?.[1] ?? "";
    // stat: "pid (comm) state ppid ..." where comm may contain spaces; split after the ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    let exe = "";
    try {
      exe = Deno.readLinkSync(`/proc/${pid}/exe`);
    } catch { /* zombie or gone */ }
    return {
      pid,
      state: field("State"),
      ppid: Number(rest[1]),
      tracerPid: Number(field("TracerPid")),
      utimeTicks: Number(rest[11]),
      exe,
    };
  } catch {
    return null;
  }
}

/**
 * Children of a process (zombies included).
 *
 * @param ppid the parent, by default this process
 * @returns their pids
 */
export function childProcesses(ppid: number = Deno.pid): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const p = hostProcess(Number(e.name));
    if (p && p.ppid === ppid) pids.push(p.pid);
  }
  return pids;
}
