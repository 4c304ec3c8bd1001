/**
 * A progress line on stderr: bar, count, rate, ETA and outcome counts. On a terminal it redraws in place; otherwise
 * (a pipe, a CI log) it prints a line at most once a second, and always the last one.
 */
export class Progress {
  private done = 0;
  private ok = 0;
  private failed = 0;
  private readonly started = Date.now();
  private lastPrint = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly skipped: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    if (this.out.isTTY) this.timer = setInterval(() => this.render(), 250).unref();
    this.render(true);
  }

  tick(ok: boolean): void {
    this.done++;
    if (ok) this.ok++;
    else this.failed++;
    this.render();
  }

  line(): string {
    const todo = this.total - this.skipped;
    const secs = (Date.now() - this.started) / 1000;
    const rate = secs > 0 ? this.done / secs : 0;
    const left = todo - this.done;
    const eta = rate > 0 ? `${Math.ceil(left / rate)}s` : "?";
    const width = 24;
    const frac = todo > 0 ? this.done / todo : 1;
    const fill = Math.round(frac * width);
    const bar = "#".repeat(fill) + "-".repeat(width - fill);
    return (
      `${this.label} [${bar}] ${this.done + this.skipped}/${this.total} ${rate.toFixed(1)}/s ETA ${eta}` +
      ` ok ${this.ok} failed ${this.failed} skipped ${this.skipped}`
    );
  }

  private render(force = false): void {
    const now = Date.now();
    const last = this.done === this.total - this.skipped;
    if (this.out.isTTY) this.out.write(`\r\x1b[K${this.line()}`);
    else if (force || last || now - this.lastPrint >= 1000) {
      this.out.write(`${this.line()}\n`);
      this.lastPrint = now;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.out.isTTY) this.out.write(`\r\x1b[K${this.line()}\n`);
  }
}
