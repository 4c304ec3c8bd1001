import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Vigil } from "@vigil/sdk";

const stack = inject("sdkStack");
const BIN = resolve("node_modules/.bin/vigil");
const dir = mkdtempSync(join(tmpdir(), "vigil-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the workspace bin as a user would (`npx vigil …` resolves to it), in `dir`, with the env configuring it. */
function vigil(
  args: string[],
  opts: { env?: Record<string, string>; onStderr?: (all: string, child: ReturnType<typeof spawn>) => void } = {},
) {
  return new Promise<Run>((done) => {
    const child = spawn(BIN, args, {
      cwd: dir,
      env: { ...process.env, VIGIL_API_URL: stack.url, VIGIL_API_KEY: stack.apiKey, ...opts.env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => {
      stderr += c;
      opts.onStderr?.(stderr, child);
    });
    child.on("exit", (code, signal) => done({ code, signal, stdout, stderr }));
  });
}

const api = new Vigil({ baseUrl: stack.url, apiKey: stack.apiKey });
async function protectJobIds(): Promise<Set<string>> {
  const ids = new Set<string>();
  for await (const j of api.jobs.listAll({ operation: "protect", limit: 100 })) ids.add(j.id);
  return ids;
}

describe("vigil CLI", () => {
  it("--help exits 0; usage errors exit 2 with a clear message", async () => {
    const help = await vigil(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("vigil protect <files|folders|globs…>");
    expect(help.stdout).toContain("lowlight, derain");
    const none = await vigil([]);
    expect(none.code).toBe(2);
    const bad = await vigil(["protect", "no-such-dir"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("no such file or folder: no-such-dir");
    const flag = await vigil(["jobs", "list", "--bogus"]);
    expect(flag.code).toBe(2);
    const hdr = await vigil(["enhance", "hdr", "x.jpg"]);
    expect(hdr.code).toBe(2);
    expect(hdr.stderr).toContain("enhance hdr: the API has no such operation (no POST /v1/enhance/hdr");
    const nokey = await vigil(["jobs", "list"], { env: { VIGIL_API_KEY: "" } });
    expect(nokey.code).toBe(2);
    expect(nokey.stderr).toContain("VIGIL_API_KEY");
    const missing = await vigil(["jobs", "get", "job_missing"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("404");
  });

  it("inspect and enhance take globs, print a table or JSON, write outputs with --out; jobs get/list/cancel", async () => {
    mkdirSync(join(dir, "few"));
    for (const i of [1, 2])
      await sharp(readFileSync("test/fixtures/photo.jpg"))
        .resize(128, 128)
        .jpeg({ quality: 80 + i })
        .toFile(join(dir, "few", `p${i}.jpg`));
    const table = await vigil(["inspect", "few/*.jpg", "--no-resume"]);
    expect(table.code).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^FILE\s+STATUS\s+JOB\s+DETAIL$/);
    expect(table.stdout).toMatch(/p1\.jpg\s+succeeded\s+job_\w+\s+phash=[0-9a-f]{16}/);
    expect(table.stderr).toContain("inspect: 2 files, 2 succeeded, 0 failed");
    const lit = await vigil(["enhance", "lowlight", "few/p1.jpg", "--json", "--no-resume", "-o", "out", "-p", "format=jpeg"]);
    expect(lit.code).toBe(0);
    const parsed = JSON.parse(lit.stdout);
    expect(parsed.summary).toMatchObject({ total: 1, succeeded: 1 });
    expect(parsed.results[0].outputs).toEqual([join("out", "p1.jpg")]);
    expect((await sharp(join(dir, "out", "p1.jpg")).metadata()).format).toBe("jpeg");
    const jobId = parsed.results[0].job_id as string;
    const got = await vigil(["jobs", "get", jobId, "--json"]);
    expect(JSON.parse(got.stdout)).toMatchObject({ id: jobId, operation: "enhance.lowlight", status: "succeeded" });
    const list = await vigil(["jobs", "list", "--operation", "enhance.lowlight"]);
    expect(list.stdout).toContain(jobId);
    const cancel = await vigil(["jobs", "cancel", jobId]);
    expect(cancel.code).toBe(1); // a finished job cannot be canceled: the API's 409 and exit 1
    expect(cancel.stderr).toContain("409");
    const badParam = await vigil(["protect", "few/p1.jpg", "--no-resume", "-p", "strength=99"]);
    expect(badParam.code).toBe(1);
    expect(badParam.stdout).toMatch(/failed\s+invalid_params/);
  });

  it("webhooks create / list / deliveries / delete", async () => {
    const created = JSON.parse(
      (await vigil(["webhooks", "create", "http://127.0.0.1:9/hooks", "--events", "job.failed", "--json"])).stdout,
    );
    expect(created.secret).toMatch(/^whsec_/);
    expect((await vigil(["webhooks", "list"])).stdout).toContain(created.id);
    const deliveries = await vigil(["webhooks", "deliveries", created.id]);
    expect(deliveries.code).toBe(0);
    expect(deliveries.stdout.split("\n")[0]).toMatch(/^ID\s+EVENT\s+TYPE\s+STATUS\s+ATTEMPTS\s+LAST$/);
    const del = await vigil(["webhooks", "delete", created.id]);
    expect(del.stdout).toMatch(new RegExp(`${created.id}\\s+true`));
    expect((await vigil(["webhooks", "list"])).stdout).not.toContain(created.id);
  });

  /**
   * npm test runs 24 photos; `npm run bench -- cli` runs this same test with 100 (VIGIL_CLI_PHOTOS=100) and writes
   * its timings to bench/results/cli.json. Measured with one runner on the 2 shared cores (load average 14, other
   * suites running): 24 photos 96 s, 100 photos 269 s, so 2.7-4 s a photo for protect's two stages.
   */
  const N = Number(process.env.VIGIL_CLI_PHOTOS ?? 24);
  const STOP_AT = Math.ceil(N * 0.3);
  describe(`${N} photos, Ctrl-C part way, resumed`, () => {
    const photos = join(dir, "photos");
    beforeAll(async () => {
      mkdirSync(photos);
      const base = await sharp(readFileSync("test/fixtures/photo.jpg")).resize(320, 240, { fit: "cover" }).toBuffer();
      // Each a different photo (hue and brightness vary), so every file has its own content hash and job.
      for (let i = 0; i < N; i++)
        await sharp(base)
          .modulate({ hue: i * 3, brightness: 0.8 + (i % 10) * 0.04 })
          .jpeg({ quality: 85 })
          .toFile(join(photos, `photo-${String(i).padStart(3, "0")}.jpg`));
    });

    it("protects the folder with a progress bar; the re-run sends no finished file again", { timeout: 600_000 }, async () => {
      const before = await protectJobIds();
      const state = join(dir, "state.json");
      const t0 = Date.now();
      let sent = false;
      const first = await vigil(["protect", "photos", "--concurrency", "4", "--state", state, "--json"], {
        onStderr: (all, child) => {
          const m = [...all.matchAll(new RegExp(` (\\d+)/${N} `, "g"))].at(-1);
          if (!sent && m && Number(m[1]) >= STOP_AT) {
            sent = true;
            child.kill("SIGINT");
          }
        },
      });
      const firstSeconds = (Date.now() - t0) / 1000;
      expect(sent).toBe(true);
      expect(first.code, `first run:\n${first.stdout.slice(-3000)}\n${first.stderr.slice(-2000)}`).toBe(130);
      expect(first.stderr).toMatch(new RegExp(`protect \\[[#-]{24}\\] \\d+/${N} [\\d.]+/s ETA \\d+s ok \\d+ failed 0 skipped 0`));
      expect(first.stderr).toContain("interrupted: finishing up");
      const s1 = JSON.parse(first.stdout).summary;
      expect(s1.succeeded).toBeGreaterThanOrEqual(STOP_AT);
      expect(s1.interrupted).toBe(N - s1.succeeded);
      expect(s1.failed).toBe(0);
      const saved = JSON.parse(readFileSync(state, "utf8")).entries as Record<string, { status: string; job_id?: string }>;
      const doneFirst = Object.entries(saved).filter(([, e]) => e.status === "succeeded");
      expect(doneFirst).toHaveLength(s1.succeeded);
      const inFlight = Object.values(saved).filter((e) => e.status === "pending").length;

      const t1 = Date.now();
      const second = await vigil(["protect", "photos", "--concurrency", "4", "--state", state, "--json"]);
      const secondSeconds = (Date.now() - t1) / 1000;
      expect(second.code, `second run:\n${second.stdout.slice(-3000)}\n${second.stderr.slice(-2000)}`).toBe(0);
      const s2 = JSON.parse(second.stdout).summary;
      expect(s2).toMatchObject({ total: N, skipped: s1.succeeded, succeeded: N - s1.succeeded, failed: 0, interrupted: 0 });
      expect(second.stderr).toContain(`skipped ${s1.succeeded}`);
      expect(second.stderr).toContain(`protect [${"#".repeat(24)}] ${N}/${N} `);

      // The files done in the first run kept their jobs; and the API made exactly one protect job per photo over
      // both runs: the files in flight at Ctrl-C were answered by the jobs their first request had made.
      const after = JSON.parse(readFileSync(state, "utf8")).entries as typeof saved;
      for (const [k, e] of doneFirst) expect(after[k]!.job_id).toBe(e.job_id);
      expect(Object.values(after).every((e) => e.status === "succeeded")).toBe(true);
      const created = [...(await protectJobIds())].filter((id) => !before.has(id));
      expect(created).toHaveLength(N);
      expect(new Set(Object.values(after).map((e) => e.job_id))).toEqual(new Set(created));
      const measured = {
        photos: N,
        size: "320x240 JPEG",
        concurrency: 4,
        runners: 1,
        first_run_s: Math.round(firstSeconds * 10) / 10,
        done_before_sigint: s1.succeeded,
        in_flight_at_sigint: inFlight,
        resumed_run_s: Math.round(secondSeconds * 10) / 10,
        resumed_files: s2.succeeded,
        protect_jobs_created: created.length,
        seconds_per_photo: Math.round(((firstSeconds + secondSeconds) / N) * 100) / 100,
      };
      console.log(`vigil protect batch: ${JSON.stringify(measured)}`);
      if (process.env.VIGIL_CLI_RESULT) writeFileSync(process.env.VIGIL_CLI_RESULT, JSON.stringify(measured));
      expect(existsSync(`${state}.${process.pid}.tmp`)).toBe(false);
    });
  });
});
