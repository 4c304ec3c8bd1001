/**
 * A minimal Prometheus registry (text exposition format 0.0.4): counters, gauges and histograms with
 * labels. Small enough to own, so the runner has no metrics dependency.
 */
type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]!.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function withLe(key: string, le: string): string {
  return key ? `${key.slice(0, -1)},le="${le}"}` : `{le="${le}"}`;
}

interface Metric {
  render(): string[];
}

export class Counter implements Metric {
  private values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} counter`,
      ...[...this.values].map(([k, v]) => `${this.name}${k} ${v}`),
    ];
  }
}

export class Gauge implements Metric {
  private values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {
    this.values.set("", 0);
  }
  set(value: number, labels: Labels = {}): void {
    this.values.set(labelKey(labels), value);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} gauge`,
      ...[...this.values].map(([k, v]) => `${this.name}${k} ${v}`),
    ];
  }
}

export class Histogram implements Metric {
  private series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[],
  ) {}
  observe(value: number, labels: Labels = {}): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    this.buckets.forEach((b, i) => {
      if (value <= b) s.counts[i]!++;
    });
    s.sum += value;
    s.count++;
  }
  count(labels: Labels = {}): number {
    return this.series.get(labelKey(labels))?.count ?? 0;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket${withLe(k, String(b))} ${s.counts[i]}`));
      lines.push(
        `${this.name}_bucket${withLe(k, "+Inf")} ${s.count}`,
        `${this.name}_sum${k} ${s.sum}`,
        `${this.name}_count${k} ${s.count}`,
      );
    }
    return lines;
  }
}

const SECONDS_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class RunnerMetrics {
  readonly jobs = new Counter("vigil_runner_jobs_total", "Jobs finished by this runner, by operation and outcome.");
  readonly jobDuration = new Histogram(
    "vigil_runner_job_duration_seconds",
    "Wall time per job from lease to report.",
    SECONDS_BUCKETS,
  );
  readonly modelSeconds = new Histogram(
    "vigil_runner_model_seconds",
    "Time spent inside model execution per job.",
    SECONDS_BUCKETS,
  );
  readonly inflight = new Gauge("vigil_runner_inflight", "Jobs currently being processed.");
  readonly leaseErrors = new Counter("vigil_runner_lease_errors_total", "Failed lease requests to the worker.");
  readonly rejectedTickets = new Counter(
    "vigil_runner_rejected_tickets_total",
    "Leased jobs whose ticket failed verification, by reason.",
  );
  readonly workerUp = new Gauge("vigil_runner_worker_reachable", "1 when the last call to the worker got an answer.");

  render(): string {
    const all: Metric[] = [
      this.jobs,
      this.jobDuration,
      this.modelSeconds,
      this.inflight,
      this.leaseErrors,
      this.rejectedTickets,
      this.workerUp,
    ];
    return all.flatMap((m) => m.render()).join("\n") + "\n";
  }
}
