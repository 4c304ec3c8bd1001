/**
 * Writes the "rotated_jitter" and "rotated" record descriptors of every face in face-api's sample1-6.jpg to a
 * JSON file, or compares them with such a file: how far batching the jittered passes moves the descriptors.
 * Run: npx tsx models/identity/scripts/jitter-batch-check.ts write|compare FILE
 */
import { readFileSync, writeFileSync } from "node:fs";
import { analyzeFaces } from "../../../gpu-runner/src/face/analyze.ts";
import { FACE_API_SAMPLES, loadRaster } from "./common.ts";

async function main(): Promise<void> {
  const [mode, file] = [process.argv[2], process.argv[3]!];
  const out: Record<string, { rotated: number[]; rotated_jitter: number[] }[]> = {};
  for (const path of FACE_API_SAMPLES) {
    const faces = await analyzeFaces(await loadRaster(path), { recordChips: ["rotated_jitter", "rotated"] });
    out[path] = faces.map((f) => ({
      rotated: Array.from(f.chipDescriptors!.rotated!),
      rotated_jitter: Array.from(f.chipDescriptors!.rotated_jitter!),
    }));
  }
  if (mode === "write") {
    writeFileSync(file, JSON.stringify(out));
    return;
  }
  const ref = JSON.parse(readFileSync(file, "utf8")) as typeof out;
  const stats = { faces: 0, rotated: { maxAbs: 0, maxEuclid: 0 }, rotated_jitter: { maxAbs: 0, maxEuclid: 0 } };
  for (const [path, faces] of Object.entries(out)) {
    if (faces.length !== ref[path]!.length) throw new Error(`${path}: ${faces.length} faces vs ${ref[path]!.length}`);
    faces.forEach((f, i) => {
      stats.faces++;
      for (const k of ["rotated", "rotated_jitter"] as const) {
        const [a, b] = [f[k], ref[path]![i]![k]];
        let [m, s] = [0, 0];
        a.forEach((v, j) => ([m, s] = [Math.max(m, Math.abs(v - b[j]!)), s + (v - b[j]!) ** 2]));
        stats[k].maxAbs = Math.max(stats[k].maxAbs, m);
        stats[k].maxEuclid = Math.max(stats[k].maxEuclid, Math.sqrt(s));
      }
    });
  }
  console.log(JSON.stringify(stats));
}

void main();
