import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type * as TfModule from "@tensorflow/tfjs";
import type * as FaceApiModule from "@vladmandic/face-api/dist/face-api.node-wasm.js";

/**
 * The three TF.js models face analysis needs, pinned by the sha256 of their weight files as shipped in
 * @vladmandic/face-api 1.7.15 (they are not in models/manifest.json because they are not ONNX). A changed
 * file means a changed identity descriptor, which silently breaks every stored identity code, so a
 * mismatch refuses to load instead of degrading.
 */
export const FACE_MODEL_FILES = {
  ssd_mobilenetv1_model: {
    bin: "2835640602d53718aa6ae9a42896327eaa21beefed056c218d32ca7d79e1e2f8",
    manifest: "888f744dffbc84f5f060d1f8427d9742341943a2dfaaf9205d10029b7e7a2955",
  },
  face_landmark_68_model: {
    bin: "4611ef65c87d836d03d684b30eec4d195d8b219fa1dd58fc58945831c6b9299b",
    manifest: "ca4886639f86e99b39fed0c155f81b63317225773bd9616716e887b0153389c9",
  },
  face_recognition_model: {
    bin: "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",
    manifest: "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
  },
} as const;

export type FaceApi = typeof FaceApiModule;

const require = createRequire(import.meta.url);

function packageDir(name: string): string {
  return dirname(require.resolve(`${name}/package.json`));
}

export class FaceModelError extends Error {
  override name = "FaceModelError";
}

async function checkFile(path: string, expected: string): Promise<void> {
  const digest = createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
  if (digest !== expected) throw new FaceModelError(`face model file ${path} has sha256 ${digest}, expected ${expected}`);
}

async function checkModels(modelDir: string): Promise<void> {
  for (const [model, hashes] of Object.entries(FACE_MODEL_FILES)) {
    await checkFile(join(modelDir, `${model}.bin`), hashes.bin);
    await checkFile(join(modelDir, `${model}-weights_manifest.json`), hashes.manifest);
  }
}

async function load(): Promise<FaceApi> {
  const before = processHandlers();
  // Imported on first use, not with this module: tfjs, its wasm backend and face-api take 0.5 s of CPU to import
  // (measured 2026-12-02, 2-core machine), which every runner start would pay, a one-shot CLI exec of
  // enhance.derain included. face-api's `tf` is this same @tensorflow/tfjs module.
  const [tf, { setWasmPaths }, faceapi] = await Promise.all([
    import("@tensorflow/tfjs"),
    import("@tensorflow/tfjs-backend-wasm"),
    import("@vladmandic/face-api/dist/face-api.node-wasm.js"),
  ]);
  tfModule = tf;
  // A directory path (not a file map) and no second argument: the wasm binaries come from node_modules,
  // never from a CDN. The SIMD build is picked automatically when the CPU supports it.
  setWasmPaths(`${join(packageDir("@tensorflow/tfjs-backend-wasm"), "dist")}/`);
  try {
    if (!(await tf.setBackend("wasm"))) throw new FaceModelError("tfjs wasm backend failed to initialise");
    await tf.ready();
  } finally {
    removeHandlersAddedSince(before);
  }
  const modelDir = join(packageDir("@vladmandic/face-api"), "model");
  await checkModels(modelDir);
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(modelDir);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(modelDir);
  await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);
  return faceapi;
}

const PROCESS_EVENTS = ["unhandledRejection", "uncaughtException"] as const;

type ProcessEvent = (typeof PROCESS_EVENTS)[number];
type Listener = (...args: unknown[]) => void;
const listenersOf = (event: ProcessEvent): Listener[] => process.listeners(event as "uncaughtException") as Listener[];

function processHandlers(): Map<ProcessEvent, Listener[]> {
  return new Map(PROCESS_EVENTS.map((e) => [e, listenersOf(e)]));
}

/**
 * The wasm backend's emscripten glue, when it initialises under Node, installs `process.on("unhandledRejection",
 * r => { throw r })` and an `uncaughtException` handler that rethrows: from then on any unhandled rejection
 * anywhere in the process is a fatal exception (exit 7), whatever handler the runner has. That is how issue 12's
 * poison image took runners down (test/runner/face-poison.test.ts). They are removed again, so that the process's
 * policy is the runner's own (crash-guard.ts), or Node's default where none is installed.
 */
function removeHandlersAddedSince(before: Map<ProcessEvent, Listener[]>): void {
  for (const event of PROCESS_EVENTS) {
    const old = before.get(event) ?? [];
    for (const l of listenersOf(event)) if (!old.includes(l)) process.removeListener(event, l);
  }
}

let loading: Promise<FaceApi> | null = null;
let tfModule: typeof TfModule | null = null;

/** Loads the backend and the three nets once per process; concurrent callers share the same promise. */
export function loadFaceModels(): Promise<FaceApi> {
  if (!loading) {
    loading = load().catch((err: unknown) => {
      // Let a later call retry rather than caching the failure forever.
      loading = null;
      throw err;
    });
  }
  return loading;
}

/** The @tensorflow/tfjs module with the face models' backend ready (for scripts and tests that build tensors). */
export async function loadFaceTf(): Promise<typeof TfModule> {
  await loadFaceModels();
  return tfModule!;
}
