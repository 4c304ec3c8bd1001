import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./helpers.ts";
import { parityDiffs, readParityMeta, sha256File } from "./parity.ts";

/**
 * models/common/export_hook.py, driven by test/runner/fixtures/export-hook-cases.py into a scratch directory:
 * the ONNX file, the manifest entry and the parity fixture it writes for a toy model and for lowlight's own
 * export spec, checked here with onnxruntime-node (Debian has no onnxruntime for Python).
 */
const PYTHON = "/usr/bin/python3"; // Debian's interpreter, which has python3-torch and python3-onnx (see shared notes)
const HAS_TORCH = spawnSync(PYTHON, ["-c", "import torch, onnx"]).status === 0;
if (!HAS_TORCH)
  console.warn(
    `\n*** export hook: ${PYTHON} cannot import torch and onnx (apt-get install python3-torch python3-onnx); models/common/export_hook.py is NOT tested ***\n`,
  );

interface Entry {
  id: string;
  file: string;
  sha256: string;
  version: string;
  inputs: { name: string; shape: (number | string)[] }[];
  outputs: { name: string; shape: (number | string)[] }[];
  [k: string]: unknown;
}

const dir = mkdtempSync(join(tmpdir(), "vigil-export-hook-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let printed: {
  toy: Entry;
  lowlight: Entry;
  lowlight_graph: { nodes: number[]; same_ops: boolean; same_initializers: boolean };
};
beforeAll(() => {
  if (!HAS_TORCH) return;
  const r = spawnSync(PYTHON, [join(ROOT, "test/runner/fixtures/export-hook-cases.py"), dir], {
    encoding: "utf8",
    timeout: 120_000,
  });
  expect(r.status, r.stderr).toBe(0);
  printed = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}, 130_000);

const manifest = (sub: string) => JSON.parse(readFileSync(join(dir, sub, "manifest.json"), "utf8")) as { models: Entry[] };

describe.skipIf(!HAS_TORCH)("the export hook (models/common/export_hook.py)", () => {
  it("writes the ONNX file and its manifest entry, replacing only its own id", async () => {
    const { models } = manifest("toy");
    // Exported twice (0.0.1, then 0.1.0): one entry, the latest; the entry that was there before is untouched.
    expect(models.map((m) => [m.id, m.version ?? null])).toEqual([
      ["toy-restore", "0.1.0"],
      ["zz-other", null],
    ]);
    const entry = models[0]!;
    expect(entry).toEqual(printed.toy);
    expect(entry.sha256).toBe(await sha256File(join(dir, "toy", entry.file)));
    expect(entry).toMatchObject({ file: "toy/weights/toy-restore.onnx", opset: 17, card: "toy/CARD.md" });
    expect(entry.inputs).toEqual([
      { name: "image", shape: [1, 3, "height", "width"], dtype: "float32", range: [0, 1], note: "one tile" },
      { name: "thumb", shape: [1, 3, 16, 16], dtype: "float32" },
      { name: "gain", shape: [1], dtype: "float32", note: "scalar from params" },
    ]);
    expect(entry.outputs).toEqual([{ name: "restored", shape: [1, 3, "height", "width"], dtype: "float32" }]);
  });

  it("writes a parity fixture that onnxruntime-node reproduces, at the fixture's size and at another", async () => {
    const fixture = join(dir, "toy", "toy-restore-parity");
    const meta = await readParityMeta(fixture);
    expect(meta).toMatchObject({
      model: "toy-restore",
      inputs: { image: [1, 3, 40, 56], thumb: [1, 3, 16, 16], gain: [1] },
      outputs: { restored: [1, 3, 40, 56] },
      tolerance: 1e-4,
      source: "random",
    });
    const onnx = join(dir, "toy", printed.toy.file);
    expect(meta.onnx_sha256).toBe(await sha256File(onnx));
    const session = await ort.InferenceSession.create(onnx);
    expect((await parityDiffs(session, fixture, meta)).restored).toBeLessThan(meta.tolerance);
    // Dynamic height and width: a 72 x 30 tile through the graph traced at 24 x 32.
    const other = { inputs: { image: [1, 3, 72, 30], thumb: [1, 3, 16, 16], gain: [1] }, outputs: { restored: [1, 3, 72, 30] } };
    expect((await parityDiffs(session, join(dir, "toy", "other"), other)).restored).toBeLessThan(1e-5);
  });

  it("exports lowlight through its spec with the committed manifest entry and the committed graph", async () => {
    const committed = (JSON.parse(readFileSync(join(ROOT, "models/manifest.json"), "utf8")) as { models: Entry[] }).models.find(
      (m) => m.id === "lowlight-iagc",
    )!;
    const { sha256, ...staged } = manifest("lowlight").models[0]!;
    const { sha256: committedSha, ...rest } = committed;
    // Everything but the hash (the weights here are untrained) is what models/manifest.json says.
    expect(staged).toEqual(rest);
    expect(sha256).not.toBe(committedSha);
    // Same nodes and initializer names and shapes as the committed ONNX: a re-export reproduces its graph.
    expect(printed.lowlight_graph).toMatchObject({ nodes: [466, 466], same_ops: true, same_initializers: true });
    const fixture = join(dir, "lowlight", "lowlight-iagc-parity");
    const meta = await readParityMeta(fixture);
    const session = await ort.InferenceSession.create(join(dir, "lowlight", staged.file));
    expect(Object.keys(meta.inputs)).toEqual(session.inputNames);
    expect((await parityDiffs(session, fixture, meta)).enhanced).toBeLessThan(meta.tolerance);
  });
});
