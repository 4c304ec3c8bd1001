/**
 * Child process for face-poison.test.ts: runs the issue 12 poison image (a 20000x50 PNG) through face analysis
 * in a process of its own, so that a crash shows as this process dying (before the fix: exit 7 from tfjs-wasm's
 * rethrowing handler) instead of taking the test runner down. Prints one JSON line per step; exits 0 when every
 * step settled, whatever its outcome.
 */
import { analyzeFaces } from "../../gpu-runner/src/face/analyze.ts";
import { RunnerError } from "../../gpu-runner/src/errors.ts";
import { executeOperation } from "../../gpu-runner/src/execute.ts";
import { decodeImage } from "../../gpu-runner/src/image/decode.ts";
import { SessionCache } from "../../gpu-runner/src/models/session-cache.ts";
import { faceAnalyzePipeline } from "../../gpu-runner/src/operations/face-analyze.ts";
import { POISON_PARAMS, poisonPng } from "./face-poison.fixtures.ts";

const report = (step: string, v: Record<string, unknown>) => process.stdout.write(JSON.stringify({ step, ...v }) + "\n");
const outcome = (e: unknown) =>
  e instanceof RunnerError
    ? { outcome: "rejected", code: e.code, retryable: e.retryable }
    : { outcome: "threw", error: String(e) };

const png = await poisonPng();
const image = await decodeImage(png, { maxPixels: 50_000_000 });
report("decoded", { width: image.width, height: image.height, bytes: png.length });
// The detector itself, below the geometry check: it must settle (no faces in noise), not crash.
try {
  const faces = await analyzeFaces(image);
  report("analyze", { outcome: "resolved", faces: faces.length });
} catch (e) {
  report("analyze", outcome(e));
}
// The job path of protect's and verify's face.analyze stage: decode, geometry check, pipeline.
for (const [flow, params] of Object.entries(POISON_PARAMS)) {
  try {
    await executeOperation({
      pipeline: faceAnalyzePipeline,
      params,
      inputs: [png],
      maxPixels: 50_000_000,
      models: [],
      sessions: new SessionCache({ modelsDir: "/nonexistent", executionProviders: ["cpu"] }),
      signal: new AbortController().signal,
    });
    report(flow, { outcome: "resolved" });
  } catch (e) {
    report(flow, outcome(e));
  }
}
report("done", { rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20) });
