// `npm run runner -- ...`: the runner CLI (gpu-runner/src/cli.ts), bundled by esbuild and run by plain Node.
//
// Why: a one-shot `exec` is mostly start-up. Through tsx's loader hook the CLI spent 1.29 s of CPU before it did
// anything (printing its usage), bundled 0.62 s, and esbuild's bundle itself costs 0.03 s (measured 2026-12-02 on the
// 2-core machine), so `npm run runner -- exec enhance.derain` on a 0.4 MP photo can meet its 2 s. Each start bundles
// the current sources, so the CLI never runs stale code. The bundle sits in gpu-runner/dist/ (git-ignored), at the
// same depth as gpu-runner/src/, because the sources locate the repository and their WebAssembly file relative to
// their own URL; each process writes its own file, so concurrent starts never read a half-written one.
import { buildSync } from "esbuild";
import { copyFileSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const runner = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(runner, "dist");
mkdirSync(dist, { recursive: true });
const wasm = "watermark-residual.wasm";
const staged = join(dist, `.${process.pid}.${wasm}`);
copyFileSync(join(runner, "src/operations", wasm), staged);
renameSync(staged, join(dist, wasm));
const bundle = join(dist, `cli.${process.pid}.mjs`);
buildSync({
  entryPoints: [join(runner, "src/cli.ts")],
  outfile: bundle,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: "inline",
  logLevel: "warning",
});
// The CLI exits through process.exit on errors, so the file goes on "exit", whatever the path.
process.on("exit", () => rmSync(bundle, { force: true }));
await import(pathToFileURL(bundle).href);
