/** The last few kilobytes a guest printed, for failure reports. */
export class ConsoleTail {
  #text = "";
  readonly #decoder = new TextDecoder();

  /**
   * @param limit characters kept
   */
  constructor(private readonly limit = 8192) {}

  /** Appends output bytes. */
  append(bytes: Uint8Array): void {
    this.#text += this.#decoder.decode(bytes, { stream: true });
    if (this.#text.length > 2 * this.limit) this.#text = this.#text.slice(-this.limit);
  }

  /**
   * The last `n` lines, the unfinished one included.
   *
   * @param n how many
   * @returns lines without their newline
   */
  lastLines(n: number): string[] {
    const lines = this.#text.split("\n");
    if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    return lines.slice(-n);
  }
}
