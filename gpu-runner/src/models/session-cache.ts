import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { isAbsolute, join, relative, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import type { ModelRef } from "../../../contract/protocol.ts";
import type { z } from "zod";
import { RunnerError } from "../errors.ts";
import { log as defaultLog, type Logger } from "../log.ts";
import { loadManifest, type Manifest } from "./manifest.ts";

export type ModelRefT = z.infer<typeof ModelRef>;

export interface SessionCacheOptions {
  modelsDir: string;
  executionProviders: string[];
  log?: Logger;
}

/**
 * One InferenceSession per model id, created once and shared by every job. Before a model is loaded, the
 * bytes on disk must hash to what both the manifest and the ticket say: a runner with a stale or tampered
 * model refuses to produce results under the current model's name.
 */
export class SessionCache {
  private readonly sessions = new Map<string, { sha256: string; session: Promise<ort.InferenceSession> }>();
  private manifest?: Promise<Manifest>;
  private readonly log: Logger;
  private providers: string[];

  constructor(private readonly options: SessionCacheOptions) {
    this.log = options.log ?? defaultLog;
    this.providers = options.executionProviders;
  }

  getManifest(): Promise<Manifest> {
    this.manifest ??= loadManifest(this.options.modelsDir).catch((e) => {
      this.manifest = undefined;
      throw e;
    });
    return this.manifest;
  }

  /** The manifest's refs for the given ids (for `exec`, which has no ticket). */
  async refsFor(ids: readonly string[]): Promise<ModelRefT[]> {
    const manifest = await this.getManifest();
    return ids.map((id) => {
      const m = manifest.models.find((x) => x.id === id);
      if (!m) throw new RunnerError("model_unavailable", `model ${id} is not in models/manifest.json`, false);
      return { id: m.id, version: m.version, sha256: m.sha256 };
    });
  }

  get(ref: ModelRefT): Promise<ort.InferenceSession> {
    const cached = this.sessions.get(ref.id);
    if (cached) {
      if (cached.sha256 !== ref.sha256) {
        return Promise.reject(
          new RunnerError(
            "model_checksum_mismatch",
            `model ${ref.id}: ticket wants sha256 ${ref.sha256}, this runner loaded ${cached.sha256}`,
          ),
        );
      }
      return cached.session;
    }
    const session = this.load(ref);
    this.sessions.set(ref.id, { sha256: ref.sha256, session });
    // A failed load must not poison the cache: the next job retries it.
    session.catch(() => this.sessions.delete(ref.id));
    return session;
  }

  private async load(ref: ModelRefT): Promise<ort.InferenceSession> {
    const manifest = await this.getManifest();
    const entry = manifest.models.find((m) => m.id === ref.id);
    if (!entry) throw new RunnerError("model_unavailable", `model ${ref.id} is not in this runner's models/manifest.json`, true);
    const path = resolve(this.options.modelsDir, entry.file);
    const rel = relative(this.options.modelsDir, path);
    if (rel.startsWith("..") || isAbsolute(rel))
      throw new RunnerError("model_unavailable", `model ${ref.id} file escapes the models directory`);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (e) {
      throw new RunnerError(
        "model_unavailable",
        `model ${ref.id}: cannot read ${join("models", rel)}: ${(e as Error).message}`,
        true,
      );
    }
    const actual = createHash("sha256").update(bytes).digest("hex");
    if (actual !== entry.sha256 || actual !== ref.sha256) {
      throw new RunnerError(
        "model_checksum_mismatch",
        `model ${ref.id}: file sha256 ${actual}, manifest ${entry.sha256}, ticket ${ref.sha256}`,
        false,
      );
    }
    return this.createSession(ref.id, bytes);
  }

  private async createSession(id: string, bytes: Buffer): Promise<ort.InferenceSession> {
    try {
      return await ort.InferenceSession.create(bytes, { executionProviders: this.providers });
    } catch (e) {
      const nonCpu = this.providers.filter((p) => p !== "cpu");
      if (nonCpu.length === 0) throw new RunnerError("model_load_failed", `model ${id}: ${(e as Error).message}`, true);
      // The GPU provider libraries are missing or no device is visible: keep serving on the CPU.
      this.log("warn", "execution providers unavailable, falling back to cpu", {
        model: id,
        providers: nonCpu,
        error: (e as Error).message,
      });
      this.providers = ["cpu"];
      return ort.InferenceSession.create(bytes, { executionProviders: ["cpu"] });
    }
  }

  get activeProviders(): readonly string[] {
    return this.providers;
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.allSettled(all.map(async (s) => (await s.session).release()));
  }
}
