/**
 * Batches bursts of changes into one run: the run happens after `quietMs` without a new trigger,
 * or `maxDelayMs` after the first trigger of the burst, whichever is first. A flood of updates
 * therefore yields a bounded number of recomputations, and a steady trickle is never starved.
 */
export class Batcher {
  private quietTimer: NodeJS.Timeout | undefined;
  private maxTimer: NodeJS.Timeout | undefined;
  private running = false;
  private again = false;
  /** Number of runs so far. */
  runs = 0;

  constructor(
    private readonly quietMs: number,
    private readonly maxDelayMs: number,
    private readonly run: () => void | Promise<void>,
  ) {}

  /** Notes a change. */
  trigger(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.quietTimer) clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => this.fire(), this.quietMs);
    this.maxTimer ??= setTimeout(() => this.fire(), this.maxDelayMs);
  }

  private fire(): void {
    if (this.quietTimer) clearTimeout(this.quietTimer);
    if (this.maxTimer) clearTimeout(this.maxTimer);
    this.quietTimer = undefined;
    this.maxTimer = undefined;
    this.running = true;
    this.runs++;
    Promise.resolve()
      .then(() => this.run())
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.trigger();
        }
      });
  }

  /** Cancels a pending run. */
  stop(): void {
    if (this.quietTimer) clearTimeout(this.quietTimer);
    if (this.maxTimer) clearTimeout(this.maxTimer);
    this.quietTimer = undefined;
    this.maxTimer = undefined;
  }
}
