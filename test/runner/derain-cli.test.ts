import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./helpers.ts";

/**
 * `npm run runner -- exec enhance.derain` as a child process, on a crop of the real rainy photo: the derained image at
 * --out, the maps next to it, and a clear problem on stderr for params the contract refuses.
 */
// What `npm run runner` runs: the CLI bundled by esbuild (gpu-runner/bin/runner.mjs).
const CLI = join(ROOT, "gpu-runner/bin/runner.mjs");
let dir: string;
let rainy: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-derain-cli-"));
  rainy = join(dir, "rainy.png");
  await sharp(join(ROOT, "test/fixtures/rainy-garden.jpg"))
    .extract({ left: 400, top: 100, width: 320, height: 240 })
    .toFile(rainy);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "exec", "enhance.derain", "--in", rainy, ...args], {
      cwd: ROOT,
      env: { ...process.env, VIGIL_EXECUTION_PROVIDERS: "cpu" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const problemOf = (stderr: string) => JSON.parse(stderr.trim().split("\n").at(-1)!) as { type: string; detail: string };

describe("runner CLI: exec enhance.derain", () => {
  it("writes the derained image to --out and, with maps=true, the maps next to it", async () => {
    const out = join(dir, "clean.png");
    const { code, stdout, stderr } = await runCli(["--out", out, "--param", "method=streak-vapor", "--param", "maps=true"]);
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout) as { result: Record<string, unknown>; artifacts: { name: string }[]; written: string[] };
    expect(report.result).toMatchObject({ width: 320, height: 240, model: "derain-streak-vapor" });
    expect(report.artifacts.map((a) => a.name)).toEqual(["image", "transmission", "rain"]);
    const maps = [join(dir, "clean.transmission.png"), join(dir, "clean.rain.png")];
    expect(report.written).toEqual([out, ...maps]);
    expect(await sharp(out).metadata()).toMatchObject({ format: "png", width: 320, height: 240, channels: 3 });
    for (const map of maps) {
      // Grey maps (the runner's PNG encoder writes an 8-bit grey raster as RGB, so grey means R = G = B here).
      const { data, info } = await sharp(map).raw().toBuffer({ resolveWithObject: true });
      expect(info).toMatchObject({ width: 320, height: 240 });
      for (let i = 0; i < data.length; i += info.channels)
        for (let c = 1; c < Math.min(3, info.channels); c++) if (data[i + c] !== data[i]) throw new Error(`${map} is not grey`);
    }
  });

  it("refuses a method without weights and a dehaze out of range, naming the param, and writes nothing", async () => {
    const out = join(dir, "refused.png");
    const [method, dehaze] = await Promise.all([
      runCli(["--out", out, "--param", "method=demo-net"]),
      runCli(["--out", out, "--param", "dehaze=2"]),
    ]);
    for (const [run, name] of [
      [method, "method"],
      [dehaze, "dehaze"],
    ] as const) {
      expect(run.code).not.toBe(0);
      expect(run.stdout).toBe("");
      const problem = problemOf(run.stderr);
      expect(problem.type).toBe("invalid_params");
      expect(problem.detail).toContain(`enhance.derain: ${name}:`);
    }
    expect(existsSync(out)).toBe(false);
  });
});
