/**
 * CPU time of face analysis on a 2 MP photo (sample1.jpg resized to 1732x1155), warm, median of N runs.
 * Run: npx tsx models/identity/scripts/bench-face.ts [N]
 */
import sharp from "sharp";
import { analyzeFaces } from "../../../gpu-runner/src/face/analyze.ts";
import { loadFaceModels } from "../../../gpu-runner/src/face/models.ts";
import { identityCode } from "../../../gpu-runner/src/face/identity-code.ts";
import { decodeRaster, FACE_API_SAMPLES } from "./common.ts";

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 10);
  const t0 = performance.now();
  const faceapi = await loadFaceModels();
  const loadMs = performance.now() - t0;
  const png = await sharp(FACE_API_SAMPLES[0]!).resize(1732, 1155).png().toBuffer();
  const img = await decodeRaster(png);
  const cold = performance.now();
  await analyzeFaces(img);
  const firstMs = performance.now() - cold;
  const full: number[] = [];
  const cpu: number[] = [];
  let faces = 0;
  for (let i = 0; i < n; i++) {
    const [w, c] = [performance.now(), process.cpuUsage()];
    const found = await analyzeFaces(img);
    found.forEach((f) => identityCode(f.descriptor));
    const used = process.cpuUsage(c);
    full.push(performance.now() - w);
    cpu.push((used.user + used.system) / 1000);
    faces = found.length;
  }
  // Main face only (verify's case when it checks the payload's face): detector + one face's nets.
  const one: number[] = [];
  const oneCpu: number[] = [];
  for (let i = 0; i < n; i++) {
    const [w, c] = [performance.now(), process.cpuUsage()];
    await analyzeFaces(img, { maxFaces: 1 });
    const used = process.cpuUsage(c);
    one.push(performance.now() - w);
    oneCpu.push((used.user + used.system) / 1000);
  }
  // Verify's analysis before and after the jittered record chip (largest face, the record descriptors it asks
  // for), and the jittered chip with one net call per crop and chip instead of the batched calls, interleaved
  // run by run so that all three see the same machine load.
  const verifyPlain: number[] = [];
  const verifyJitter: number[] = [];
  const verifyJitterUnbatched: number[] = [];
  for (let i = 0; i < n; i++) {
    let w = performance.now();
    await analyzeFaces(img, { maxFaces: 1, recordChips: ["rotated"] });
    verifyPlain.push(performance.now() - w);
    w = performance.now();
    await analyzeFaces(img, { maxFaces: 1, recordChips: ["rotated_jitter", "rotated"] });
    verifyJitter.push(performance.now() - w);
    w = performance.now();
    await analyzeFaces(img, { maxFaces: 1, recordChips: ["rotated_jitter", "rotated"], batchJitter: false });
    verifyJitterUnbatched.push(performance.now() - w);
  }
  // Detection alone, to split the time between the detector and the per-face nets.
  const det: number[] = [];
  const input = faceapi.tf.tensor3d(img.data as Uint8Array, [img.height, img.width, 3], "int32");
  for (let i = 0; i < n; i++) {
    const w = performance.now();
    await faceapi.detectAllFaces(input, new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5 }));
    det.push(performance.now() - w);
  }
  input.dispose();
  const r = (v: number): number => Math.round(v);
  console.log(
    JSON.stringify({
      image: `${img.width}x${img.height} (${((img.width * img.height) / 1e6).toFixed(2)} MP), ${faces} faces`,
      runs: n,
      model_load_ms: r(loadMs),
      first_call_ms: r(firstMs),
      analyze_wall_ms_median: r(median(full)),
      analyze_cpu_ms_median: r(median(cpu)),
      largest_face_only_wall_ms_median: r(median(one)),
      largest_face_only_cpu_ms_median: r(median(oneCpu)),
      verify_rotated_chip_wall_ms_median: r(median(verifyPlain)),
      verify_jitter_and_rotated_chips_wall_ms_median: r(median(verifyJitter)),
      verify_jitter_unbatched_wall_ms_median: r(median(verifyJitterUnbatched)),
      detection_only_ms_median: r(median(det)),
      per_face_landmarks_descriptor_ms: r((median(full) - median(det)) / Math.max(1, faces)),
    }),
  );
}

await main();
