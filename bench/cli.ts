import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The CLI batch target at full size: `vigil protect` over a folder of 100 photos (320x240), Ctrl-C once 30 are
 * done, then the re-run. It is test/sdk/cli.test.ts's batch test with VIGIL_CLI_PHOTOS=100 (npm test runs it with 24),
 * so the bench checks what the test checks (exit codes, progress line, nothing sent twice) and records the timings.
 */
export async function runCliBench(): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-cli-bench-"));
  const result = join(dir, "result.json");
  try {
    const run = spawnSync("npx", ["vitest", "run", "--project", "sdk", "test/sdk/cli.test.ts", "-t", "photos"], {
      env: { ...process.env, VIGIL_CLI_PHOTOS: "100", VIGIL_CLI_RESULT: result },
      stdio: "inherit",
    });
    if (run.status !== 0) throw new Error(`the 100-photo CLI test failed (exit ${run.status})`);
    return JSON.parse(readFileSync(result, "utf8"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
