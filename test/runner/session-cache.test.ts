import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunnerError } from "../../gpu-runner/src/errors.ts";
import { SessionCache } from "../../gpu-runner/src/models/session-cache.ts";
import { ROOT, TINY_MODEL } from "./helpers.ts";

let dir: string;
const sha = createHash("sha256").update(readFileSync(TINY_MODEL)).digest("hex");
const ref = { id: "tiny-invert", version: "1", sha256: sha };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "vigil-models-"));
  copyFileSync(TINY_MODEL, join(dir, "tiny-invert.onnx"));
  // A second entry whose manifest hash does not match its file (a stale or tampered model on disk).
  copyFileSync(TINY_MODEL, join(dir, "stale.onnx"));
  const manifest = {
    version: 1,
    models: [
      {
        id: "tiny-invert",
        version: "1",
        file: "tiny-invert.onnx",
        sha256: sha,
        inputs: ["x"],
        outputs: ["y"],
        working_size: null,
      },
      { id: "stale", version: "1", file: "stale.onnx", sha256: "a".repeat(64) },
      { id: "escape", version: "1", file: "../outside.onnx", sha256: sha },
    ],
  };
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(RunnerError);
    return (e as RunnerError).code;
  }
  throw new Error("expected a rejection");
}

describe("model session cache", () => {
  it("creates one session per model and reuses it, and the session really runs", async () => {
    const cache = new SessionCache({ modelsDir: dir, executionProviders: ["cpu"] });
    const [a, b] = await Promise.all([cache.get(ref), cache.get(ref)]);
    const c = await cache.get(ref);
    expect(a).toBe(b);
    expect(a).toBe(c);
    const x = new ort.Tensor("float32", Float32Array.from([0, 0.25, 1, 0.5, 0.5, 0.5]), [1, 3, 1, 2]);
    const { y } = await a.run({ x });
    expect(Array.from(y!.data as Float32Array)).toEqual([1, 0.75, 0, 0.5, 0.5, 0.5]);
    await cache.release();
  });

  it("rejects a ticket whose sha256 differs from the file and manifest", async () => {
    const cache = new SessionCache({ modelsDir: dir, executionProviders: ["cpu"] });
    expect(await codeOf(cache.get({ ...ref, sha256: "b".repeat(64) }))).toBe("model_checksum_mismatch");
    // A session already loaded under one hash is not handed out for another.
    await cache.get(ref);
    expect(await codeOf(cache.get({ ...ref, sha256: "b".repeat(64) }))).toBe("model_checksum_mismatch");
    await cache.release();
  });

  it("rejects a file whose sha256 differs from the manifest even when the ticket agrees with the manifest", async () => {
    const cache = new SessionCache({ modelsDir: dir, executionProviders: ["cpu"] });
    expect(await codeOf(cache.get({ id: "stale", version: "1", sha256: "a".repeat(64) }))).toBe("model_checksum_mismatch");
  });

  it("rejects unknown models and paths outside the models directory", async () => {
    const cache = new SessionCache({ modelsDir: dir, executionProviders: ["cpu"] });
    expect(await codeOf(cache.get({ id: "nope", version: "1", sha256: sha }))).toBe("model_unavailable");
    expect(await codeOf(cache.get({ id: "escape", version: "1", sha256: sha }))).toBe("model_unavailable");
  });

  it("falls back to cpu when the cuda provider is not installed", async () => {
    const warnings: string[] = [];
    const cache = new SessionCache({
      modelsDir: dir,
      executionProviders: ["cuda", "cpu"],
      log: (level, msg) => level === "warn" && warnings.push(msg),
    });
    const session = await cache.get(ref);
    expect(session.inputNames).toEqual(["x"]);
    // On a CPU box (the onnxruntime CUDA provider is only installed in the GPU image) the fallback must happen, with a warning.
    const cudaInstalled = existsSync(
      join(ROOT, "node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so"),
    );
    if (!cudaInstalled) {
      expect(warnings).toEqual(["execution providers unavailable, falling back to cpu"]);
      expect(cache.activeProviders).toEqual(["cpu"]);
    }
    await cache.release();
  });
});
