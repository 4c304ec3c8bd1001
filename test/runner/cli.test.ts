import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeWorker } from "./fake-worker.ts";
import { PHOTO, ROOT, photoBytes } from "./helpers.ts";

// What `npm run runner` runs: the CLI bundled by esbuild (gpu-runner/bin/runner.mjs).
const CLI = join(ROOT, "gpu-runner/bin/runner.mjs");
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "vigil-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
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

describe("CLI exec (child process)", () => {
  it("exec inspect prints the JSON result of a real photo", async () => {
    const { code, stdout } = await runCli(["exec", "inspect", "--in", PHOTO]);
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    const meta = await sharp(readFileSync(PHOTO)).metadata();
    expect(out).toMatchObject({
      operation: "inspect",
      result: { width: meta.width, height: meta.height, format: "jpeg", bit_depth: 8 },
    });
    expect(out.result.phash).toMatch(/^[0-9a-f]{16}$/);
  });

  it("a truncated file fails with problem-like JSON on stderr and a non-zero exit", async () => {
    const bad = join(dir, "bad.jpg");
    const photo = readFileSync(PHOTO);
    writeFileSync(bad, photo.subarray(0, photo.length >> 1));
    const { code, stdout, stderr } = await runCli(["exec", "inspect", "--in", bad]);
    expect(code).not.toBe(0);
    expect(stdout).toBe("");
    const problem = JSON.parse(stderr.trim().split("\n").at(-1)!);
    expect(problem).toMatchObject({ type: "truncated_image" });
  });

  it("rejects params the operation's schema does not allow, and unknown operations", async () => {
    const [params, unknown] = await Promise.all([
      runCli(["exec", "inspect", "--in", PHOTO, "--param", "strength=2"]),
      runCli(["exec", "no.such.op", "--in", PHOTO]),
    ]);
    expect(params.code).not.toBe(0);
    expect(JSON.parse(params.stderr.trim().split("\n").at(-1)!)).toMatchObject({ type: "invalid_params" });
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stderr.trim().split("\n").at(-1)!)).toMatchObject({ type: "unknown_operation" });
  });
});

describe("CLI serve (child process)", () => {
  it("becomes healthy, runs a job, and exits 0 on SIGTERM", async () => {
    const worker = await new FakeWorker().start();
    const port = 19464 + Math.floor(Math.random() * 500);
    const child = spawn(process.execPath, [CLI, "serve"], {
      cwd: ROOT,
      env: {
        ...process.env,
        VIGIL_API_URL: worker.url,
        VIGIL_RUNNER_ID: worker.runnerId,
        VIGIL_RUNNER_SECRET: worker.secret,
        VIGIL_LEASE_WAIT_SECONDS: "1",
        PORT: String(port),
      },
    });
    let logs = "";
    child.stderr.on("data", (d) => (logs += d));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      await worker.waitFor(() => worker.leaseCalls > 0, 20_000);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(health.status).toBe(200);
      const job = worker.enqueue({ inputs: [photoBytes()] });
      await worker.waitFor(() => job.state === "completed", 15_000);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(logs).toContain("draining");
    } finally {
      child.kill("SIGKILL");
      await worker.stop();
    }
  });
});
