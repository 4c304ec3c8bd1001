import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  getOperation,
  OPERATIONS,
  OPERATION_NAMES,
  RUNNER_OPERATION_NAMES,
  runsOnRunner,
  type OperationName,
} from "../../contract/operations.ts";
import { executeOperation } from "../../gpu-runner/src/execute.ts";
import { loadManifest } from "../../gpu-runner/src/models/manifest.ts";
import { SessionCache, type ModelRefT } from "../../gpu-runner/src/models/session-cache.ts";
import { PIPELINES, REGISTRY } from "../../gpu-runner/src/operations/registry.ts";
import { ROOT } from "./helpers.ts";
import { parityDiffs, readParityMeta, sha256File } from "./parity.ts";

/**
 * contract/operations.ts, the runner's pipeline registry and models/manifest.json describe one zoo: every
 * operation that needs a model has a pipeline, every model a pipeline asks for is in the contract entry (the ticket
 * carries only those) and in the manifest with a file whose sha256 matches, and no manifest entry is left over.
 */
const MODELS_DIR = join(ROOT, "models");
const manifest = await loadManifest(MODELS_DIR);
const byId = new Map(manifest.models.map((m) => [m.id, m]));

/** Params a job of each operation could carry; an operation whose schema needs more than its defaults is listed. */
const EXAMPLE_PARAMS: Partial<Record<OperationName, Record<string, unknown>>> = {
  "watermark.embed": { bits: "00ff00ff00ff00ff" },
  // With its optional artifacts, so that they are checked against the contract too.
  "enhance.derain": { maps: true },
};

/** A SessionCache that notes every model a pipeline loads; the sessions themselves are the real, sha256-checked ones. */
class RecordingSessions extends SessionCache {
  readonly asked = new Set<string>();
  override get(ref: ModelRefT) {
    this.asked.add(ref.id);
    return super.get(ref);
  }
}

describe("contract, pipeline registry and model manifest agree", () => {
  it("every pipeline is a contract operation, once, and every operation that needs a model has a pipeline", () => {
    expect(PIPELINES.map((p) => p.name).filter((n) => !(OPERATION_NAMES as string[]).includes(n))).toEqual([]);
    expect(REGISTRY.size).toBe(PIPELINES.length);
    const withModels = OPERATION_NAMES.filter((n) => OPERATIONS[n].models.length > 0);
    expect(withModels.length).toBeGreaterThan(0);
    expect(withModels.filter((n) => !REGISTRY.has(n))).toEqual([]);
  });

  it("worker-run operations (protect, verify) have no pipeline, model or autoscaler trigger; runner operations have pipelines", () => {
    const byWorker = OPERATION_NAMES.filter((n) => !runsOnRunner(OPERATIONS[n]));
    expect(byWorker.sort()).toEqual(["protect", "verify"]);
    const triggers = readFileSync(join(ROOT, "infra/autoscaler/scaledobject.yaml"), "utf8");
    for (const name of byWorker) {
      const spec = getOperation(name)!;
      expect(REGISTRY.has(name), `${name} has a runner pipeline`).toBe(false);
      expect(spec.models, name).toEqual([]);
      expect(triggers, `${name} has an autoscaler trigger`).not.toContain(`operation="${name}"`);
      // Its stages are what runners run: each one a runner operation with a pipeline.
      expect(spec.stages!.length, name).toBeGreaterThan(0);
      for (const stage of spec.stages!) expect(runsOnRunner(getOperation(stage)!) && REGISTRY.has(stage), stage).toBe(true);
    }
    // A runner operation without a pipeline would queue jobs that no runner ever leases.
    expect(RUNNER_OPERATION_NAMES.filter((n) => !REGISTRY.has(n))).toEqual([]);
    // One autoscaler trigger per runner operation: jobs of one without a trigger (protect's and verify's
    // face.analyze stages included) would wait in the queue of a fleet scaled to zero.
    for (const name of RUNNER_OPERATION_NAMES)
      expect(triggers.split(`operation="${name}"`).length - 1, `${name}: autoscaler triggers`).toBe(1);
  });

  it("every model an operation names is in the manifest, with a file whose sha256 matches", async () => {
    const named = [...new Set(OPERATION_NAMES.flatMap((n) => OPERATIONS[n].models as readonly string[]))];
    expect(named.filter((id) => !byId.has(id))).toEqual([]);
    for (const id of named) {
      const file = join(MODELS_DIR, byId.get(id)!.file);
      expect(existsSync(file), `${id}: ${file}`).toBe(true);
      expect(await sha256File(file), id).toBe(byId.get(id)!.sha256);
    }
  });

  it("no manifest entry is orphaned: each is used by an operation or is the source a used graph derives from", () => {
    const used = new Set(OPERATION_NAMES.flatMap((n) => OPERATIONS[n].models as readonly string[]));
    const sources = new Set(
      manifest.models
        .filter((m) => used.has(m.id))
        .flatMap((m) => {
          const from = (m as { derived_from?: { id?: string } }).derived_from?.id;
          return from ? [from] : [];
        }),
    );
    expect(manifest.models.map((m) => m.id).filter((id) => !used.has(id) && !sources.has(id))).toEqual([]);
    expect(new Set(manifest.models.map((m) => m.id)).size).toBe(manifest.models.length);
  });

  it("every pipeline, run on a real photo, loads only models its contract entry names", { timeout: 120_000 }, async () => {
    const photo = new Uint8Array(readFileSync(join(ROOT, "test/fixtures/photo.jpg")));
    for (const pipeline of PIPELINES) {
      const spec = OPERATIONS[pipeline.name as OperationName];
      const sessions = new RecordingSessions({ modelsDir: MODELS_DIR, executionProviders: ["cpu"] });
      // Every manifest model is offered, so a pipeline that loads one its contract entry omits is seen here
      // rather than failing only once a ticket (which carries the contract's models alone) reaches a runner.
      const run = await executeOperation({
        pipeline,
        params: EXAMPLE_PARAMS[pipeline.name as OperationName] ?? {},
        inputs: Array.from({ length: spec.inputs.min }, () => photo),
        maxPixels: spec.limits.max_pixels,
        models: await sessions.refsFor(manifest.models.map((m) => m.id)),
        sessions,
        signal: new AbortController().signal,
      }).catch((e: unknown) => e as Error);
      // Checked before the run's own outcome: a pipeline given another model's session usually fails somewhere
      // inside onnxruntime, and the reason is this.
      const outside = [...sessions.asked].filter((id) => !(spec.models as readonly string[]).includes(id));
      expect(outside, `${pipeline.name} loaded models its contract entry does not name`).toEqual([]);
      if (run instanceof Error) throw run;
      // With the example params: every artifact except those whose `when` param is off (enhance.derain's maps).
      const params = spec.params.parse(EXAMPLE_PARAMS[pipeline.name as OperationName] ?? {}) as Record<string, unknown>;
      const artifacts = spec.artifacts as readonly { name: string; when?: string }[];
      expect(
        run.artifacts.map((a) => a.name),
        pipeline.name,
      ).toEqual(artifacts.filter((a) => !a.when || params[a.when] === true).map((a) => a.name));
      await sessions.release();
    }
  });

  it("every model exported by the zoo's hook has its parity fixture matching the shipped file", async () => {
    const withFixture = manifest.models.filter((m) => existsSync(join(ROOT, "test/fixtures", `${m.id}-parity`, "meta.json")));
    expect(withFixture.map((m) => m.id)).toContain("lowlight-iagc");
    const ort = await import("onnxruntime-node");
    for (const m of withFixture) {
      const dir = join(ROOT, "test/fixtures", `${m.id}-parity`);
      const meta = await readParityMeta(dir);
      expect(meta.model).toBe(m.id);
      expect(meta.onnx_sha256, `${m.id}: fixture made from another file`).toBe(m.sha256);
      const session = await ort.InferenceSession.create(join(MODELS_DIR, m.file));
      for (const [name, diff] of Object.entries(await parityDiffs(session, dir, meta)))
        expect(diff, `${m.id} ${name}`).toBeLessThan(meta.tolerance);
      await session.release();
    }
  });
});
