/**
 * The timeline's event kinds: the one place where a device or the machine says what an event
 * of a kind does. The machine's scheduler only knows "apply this event at that guest time" and
 * looks the kind up here, so a device (a disk, a NIC, a keyboard) adds kinds by registering
 * them where the board wires it, without touching the scheduler or the protocol.
 *
 * @module
 */
import type { MachineEvent } from "./machine_protocol.ts";

/**
 * Applies one event. Returns what it did, in words, for the event log; throws (a RangeError
 * for bad parameters) to reject it.
 */
export type EventHandler = (event: MachineEvent) => string;

/** What a kind is, for the registry's listing and error messages. */
export interface EventKind {
  /** The `kind` field events carry. */
  kind: string;
  /** Who registered it ("pc-board", "machine", "ata0", …). */
  owner: string;
  /** One line: the parameters it takes. */
  summary: string;
  apply: EventHandler;
}

/** The event kinds one machine knows. */
export class EventRegistry {
  readonly #kinds = new Map<string, EventKind>();

  /**
   * Adds a kind.
   *
   * @param kind its name, its owner, a summary and the handler
   * @throws {RangeError} when the name is taken (two devices may not share a kind)
   */
  register(kind: EventKind): void {
    const taken = this.#kinds.get(kind.kind);
    if (taken) {
      throw new RangeError(`event kind "${kind.kind}" is already registered by ${taken.owner}`);
    }
    this.#kinds.set(kind.kind, kind);
  }

  /** The kinds registered, by name. */
  get kinds(): readonly EventKind[] {
    return [...this.#kinds.values()];
  }

  /**
   * Applies an event.
   *
   * @param event the event
   * @returns "applied" with the handler's description, or "rejected" with why
   */
  apply(event: MachineEvent): { outcome: "applied" | "rejected"; detail: string } {
    const kind = this.#kinds.get(event.kind);
    if (kind === undefined) {
      return {
        outcome: "rejected",
        detail: `unknown event kind "${event.kind}" (known: ${[...this.#kinds.keys()].join(", ")})`,
      };
    }
    try {
      return { outcome: "applied", detail: kind.apply(event) };
    } catch (e) {
      return { outcome: "rejected", detail: (e as Error).message };
    }
  }
}
