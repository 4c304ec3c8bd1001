/**
 * Builds the runner's WebAssembly kernels from their committed text sources (wabt), so the binaries next to
 * them are reproducible: `npm run build:wasm`. test/runner/watermark-residual.test.ts fails when a committed
 * binary is not the build of its source.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import wabt from "wabt";

export const WASM_SOURCES = ["gpu-runner/src/operations/watermark-residual.wat"];

const root = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url));

/** The binary module of a .wat source, with the SIMD feature it uses. */
export async function buildWat(path: string): Promise<Uint8Array> {
  const w = await wabt();
  const module = w.parseWat(path, readFileSync(root(path), "utf8"), { simd: true });
  try {
    module.validate();
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const source of WASM_SOURCES) {
    const target = source.replace(/\.wat$/, ".wasm");
    const bytes = await buildWat(source);
    writeFileSync(root(target), bytes);
    console.log(`${target}: ${bytes.length} bytes`);
  }
}
