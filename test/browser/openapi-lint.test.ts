import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect, inject, it } from "vitest";
import { ROOT } from "../../scripts/local-stack.ts";

/**
 * The document the local stack serves at /openapi.json, linted by Redocly CLI (pinned in package.json) with
 * redocly.yaml: the recommended rules and a few promoted to errors. It lives in this project because the linter
 * runs in Node against the real served document, and this project already has a stack running.
 */
const stack = inject("stack");

interface LintReport {
  totals: { errors: number; warnings: number; ignored: number };
  problems: { ruleId: string; severity: string; message: string; location: { pointer?: string }[] }[];
}

it("Redocly finds no error and no warning in the served document", async () => {
  const res = await fetch(`${stack.url}/openapi.json`);
  expect(res.status).toBe(200);
  const dir = mkdtempSync(join(tmpdir(), "vigil-openapi-"));
  try {
    const file = join(dir, "openapi.json");
    writeFileSync(file, await res.text());
    const bin = join(ROOT, "node_modules", ".bin", "redocly");
    const args = ["lint", "--config", join(ROOT, "redocly.yaml"), "--format", "json", file];
    // Exit code 1 with problems: the report is still on stdout, so read it either way.
    const out = await promisify(execFile)(bin, args, {
      cwd: ROOT,
      env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true", NO_COLOR: "1" },
      maxBuffer: 16 * 1024 * 1024,
    }).catch((e: { stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? "", stderr: e.stderr ?? "" }));
    const start = out.stdout.indexOf("{");
    expect(start, out.stderr).toBeGreaterThanOrEqual(0);
    const report = JSON.parse(out.stdout.slice(start)) as LintReport;
    const problems = report.problems.map((p) => `${p.severity} ${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`);
    expect(problems).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
