import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

/**
 * What a batch has done, kept in a JSON file so a re-run resumes: per (operation, params, file path) the content
 * hash last sent and where that got to. A `succeeded` entry whose hash still matches is skipped. A `pending` entry
 * (sent, answer not seen: the run was interrupted or killed) keeps its Idempotency-Key, so the re-run's request is
 * answered with the job the first one created instead of making a second one. A `failed` entry is tried again.
 */
export interface StateEntry {
  hash: string;
  status: "pending" | "succeeded" | "failed";
  idempotency_key: string;
  job_id?: string;
  error?: string;
  updated_at: string;
}

interface StateFile {
  version: 1;
  entries: Record<string, StateEntry>;
}

export class BatchState {
  private data: StateFile = { version: 1, entries: {} };

  constructor(readonly path: string) {
    if (existsSync(path)) {
      const parsed = JSON.parse(readFileSync(path, "utf8")) as StateFile;
      if (parsed.version !== 1 || typeof parsed.entries !== "object") throw new Error(`${path} is not a vigil state file`);
      this.data = parsed;
    }
  }

  static key(operation: string, params: Record<string, unknown>, file: string): string {
    const p = Object.keys(params)
      .sort()
      .map((k) => `${k}=${String(params[k])}`)
      .join("&");
    return `${operation}?${p}|${file}`;
  }

  get(key: string): StateEntry | undefined {
    return this.data.entries[key];
  }

  /** Records an entry and writes the file (write then rename, so a kill mid-write leaves the old file whole). */
  set(key: string, entry: Omit<StateEntry, "updated_at">): void {
    this.data.entries[key] = { ...entry, updated_at: new Date().toISOString() };
    this.save();
  }

  save(): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.data, null, 1));
    renameSync(tmp, this.path);
  }
}
