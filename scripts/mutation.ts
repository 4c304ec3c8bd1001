/**
 * Mutation check (issue 12): plants one listed bug at a time (scripts/mutants.ts) in the job queue, webhooks, keys and
 * the runner's lease loop and job, runs the test files that should notice it, and records whether they did.
 *
 *   npm run mutation                       every mutant; writes bench/results/mutation.json and mutation.md
 *   npm run mutation -- --only webhooks    one module (or several, comma-separated, or mutant ids); merges its rows
 *   npm run mutation -- --list             the mutants, and whether each one's snippet is still found exactly once
 *
 * Why a script and not StrykerJS everywhere: the worker suites run inside workerd (@cloudflare/vitest-pool-workers),
 * where Stryker's vitest runner cannot drive them; for the runner modules Stryker 9.6.1 does run here, but its ~310
 * generated mutants of job.ts and lease-loop.ts at ~25 s of timer-driven tests each (and ~90 s per timeout) would take
 * hours on this machine (see bench/results/mutation.md).
 *
 * Safety, because other people edit these files while this runs:
 * - a target file with uncommitted changes is not touched (waited for, then reported "dirty");
 * - the original bytes are copied to a temp file and a journal before the mutant is written, and restored in
 *   `finally`, on SIGINT/SIGTERM and on an uncaught error; a journal left by a killed run is restored at start;
 * - the restore checks that the file still holds exactly the mutant: if someone saved over it meanwhile, their
 *   content is kept (with the mutation reverse-applied where it can be) and the run stops, loudly.
 * A mutant whose snippet is not found exactly once is "stale" (or "ambiguous") and fails the run: mutants cannot
 * silently rot as the code moves.
 */

import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { transformSync } from "esbuild";
import { type Mutant, MODULES, MUTANTS } from "./mutants.ts";

const ROOT = resolve(fileURLToPath(import.meta.url), "../..");
const RESULTS_JSON = join(ROOT, "bench/results/mutation.json");
const RESULTS_MD = join(ROOT, "bench/results/mutation.md");
const WORK = join(tmpdir(), "vigil-mutation");
const JOURNAL = join(WORK, "journal.json");
const VITEST = join(ROOT, "node_modules/.bin/vitest");

/** How the numbers were made, appended to mutation.md. */
const METHOD = `
## How it works

- One mutant at a time: its snippet (found exactly once) is replaced in the source, the mutant's test files run with
  \`vitest run --project <worker|runner> --bail=1 <files>\`, and the file is restored byte-identically (checked by SHA-256).
  killed = a test failed; timeout = the run took over max(120 s, 4x the unmutated run); survived = every test passed.
- Each set of test files first runs unmutated (the baseline); a failing baseline makes its mutants "error", not kills.
- The worker modules' tests run inside workerd (@cloudflare/vitest-pool-workers); the runner's in Node against the
  protocol-speaking fake worker (test/runner/fake-worker.ts), which checks request bodies and really expires leases.
- The mutants are hand-written (scripts/mutants.ts): conditions flipped or removed, boundaries moved, writes and checks
  skipped, wrong statuses or codes. None is equivalent; each changes something a client, runner or the worker can see.
- StrykerJS was tried for the runner modules: @stryker-mutator/core and @stryker-mutator/vitest-runner 9.6.1 install and
  run on Node 20 with vitest 4.1.12 (10.x needs Node 22), and its dry run passed (12 tests, 24 s). It generated 313
  mutants for job.ts and lease-loop.ts; at ~25 s of timer-driven tests per mutant and ~90 s per timeout its own estimate
  for lease-loop.ts alone was ~1 h on this shared 2-core machine, so it was stopped and not added to the project.
  It cannot drive the worker suites at all (workerd pool).
`;

type Status =
  | "killed" // a test failed
  | "timeout" // the tests did not finish in time (counted as detected, as Stryker does)
  | "survived" // every test passed with the bug planted
  | "stale" // the snippet is no longer in the file
  | "ambiguous" // the snippet is in the file more than once
  | "dirty" // the file had uncommitted changes: not touched
  | "invalid" // the mutated file does not parse: a broken mutant, not a result
  | "error" // the test run failed without a test result (crash), or its baseline failed
  | "not_run";

interface Row {
  id: string;
  module: string;
  file: string;
  description: string;
  tests: string[];
  source?: string;
  status: Status;
  killed_by?: string;
  seconds?: number;
  note?: string;
  history?: string;
}

/** What a result row says about its mutant, always taken from the current list (descriptions and notes may move on). */
function describeMutant(m: Mutant): Omit<Row, "status" | "killed_by" | "seconds"> {
  return {
    id: m.id,
    module: m.module,
    file: m.file,
    description: m.description,
    tests: m.tests,
    source: m.source,
    note: m.note,
    history: m.history,
  };
}

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const rel = (p: string) => p.replace(ROOT + "/", "");

function count(haystack: string, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + 1)) n++;
  return n;
}

function isDirty(file: string): boolean {
  const r = spawnSync("git", ["status", "--porcelain", "--", file], { cwd: ROOT, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`git status failed: ${r.stderr}`);
  return r.stdout.trim() !== "";
}

// ------------------------------------------------------------------ planting and restoring

interface Planted {
  file: string;
  backup: string;
  originalSha: string;
  mutatedSha: string;
  find: string;
  replace: string;
}
let planted: Planted | null = null;

/** Puts the original back. Refuses to overwrite anything but the exact mutant. Synchronous: runs in signal handlers. */
function restore(p: Planted): void {
  const now = readFileSync(p.file);
  const nowSha = sha(now);
  if (nowSha === p.mutatedSha) {
    copyFileSync(p.backup, p.file);
    if (sha(readFileSync(p.file)) !== p.originalSha) throw new Error(`restore of ${rel(p.file)} is not byte-identical`);
  } else if (nowSha !== p.originalSha) {
    // Someone saved the file while the mutant was in it. Keep their work; take the mutation back out if it is there.
    const text = now.toString("utf8");
    const kept = join(WORK, `conflict-${Date.now()}-${p.file.split("/").pop()}`);
    copyFileSync(p.file, kept);
    if (count(text, p.replace) === 1)
      writeFileSync(
        p.file,
        text.replace(p.replace, () => p.find),
      );
    console.error(
      `\n!!! ${rel(p.file)} changed while a mutant was planted. Their version is kept (copy: ${kept}), with the ` +
        `mutation reverse-applied ${count(text, p.replace) === 1 ? "" : "NOT POSSIBLE: check the file by hand"}. Stopping.\n`,
    );
    rmSync(JOURNAL, { force: true });
    planted = null;
    process.exit(3);
  }
  rmSync(JOURNAL, { force: true });
  rmSync(p.backup, { force: true });
  planted = null;
}

function plant(m: Mutant, original: Buffer): void {
  mkdirSync(WORK, { recursive: true });
  const file = join(ROOT, m.file);
  const backup = join(WORK, `backup-${process.pid}-${m.id}`);
  copyFileSync(file, backup);
  if (sha(readFileSync(backup)) !== sha(original)) throw new Error("backup copy differs from the original");
  const mutated = original.toString("utf8").replace(m.find, () => m.replace);
  const p: Planted = {
    file,
    backup,
    originalSha: sha(original),
    mutatedSha: sha(mutated),
    find: m.find,
    replace: m.replace,
  };
  writeFileSync(JOURNAL, JSON.stringify(p));
  planted = p;
  // Write via a temp file and rename, so a reader never sees a half-written source file.
  const tmp = `${file}.mutant-${process.pid}.tmp`;
  writeFileSync(tmp, mutated);
  renameSync(tmp, file);
}

function recoverJournal(): void {
  if (!existsSync(JOURNAL)) return;
  const p = JSON.parse(readFileSync(JOURNAL, "utf8")) as Planted;
  console.warn(`a previous run left a planted mutant in ${rel(p.file)}: restoring it`);
  if (existsSync(p.file) && existsSync(p.backup)) restore(p);
  else rmSync(JOURNAL, { force: true });
}

let child: ReturnType<typeof spawn> | null = null;
function onSignal(sig: NodeJS.Signals) {
  if (child?.pid) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  if (planted) restore(planted);
  console.error(`\n${sig}: mutant removed, source restored`);
  process.exit(130);
}
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
process.on("uncaughtException", (e) => {
  if (planted) restore(planted);
  console.error(e);
  process.exit(1);
});

// ------------------------------------------------------------------ running tests

interface TestRun {
  outcome: "passed" | "failed" | "timeout" | "error";
  firstFailure?: string;
  seconds: number;
  log: string;
}

/** `vitest run --project <p> <files>`, with vitest's JSON report to tell failed tests from a crashed run. */
async function runTests(project: string, files: string[], timeoutMs: number, tag: string): Promise<TestRun> {
  mkdirSync(WORK, { recursive: true });
  const report = join(WORK, `report-${process.pid}-${tag}.json`);
  const log = join(WORK, `log-${process.pid}-${tag}.txt`);
  rmSync(report, { force: true });
  const args = [
    "run",
    "--project",
    project,
    "--bail=1",
    "--reporter=json",
    "--reporter=dot",
    `--outputFile.json=${report}`,
    ...files,
  ];
  const t0 = performance.now();
  const out: Buffer[] = [];
  const code = await new Promise<number | "timeout">((done) => {
    child = spawn(VITEST, args, { cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"], env: process.env });
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => out.push(d));
    const timer = setTimeout(() => {
      try {
        process.kill(-child!.pid!, "SIGKILL");
      } catch {
        /* gone */
      }
      done("timeout");
    }, timeoutMs);
    child.on("exit", (c) => {
      clearTimeout(timer);
      done(c ?? 1);
    });
  });
  child = null;
  const seconds = Math.round(performance.now() - t0) / 1000;
  writeFileSync(log, Buffer.concat(out));
  if (code === "timeout") return { outcome: "timeout", seconds, log };
  let json: {
    numFailedTests: number;
    numFailedTestSuites: number;
    numTotalTests: number;
    testResults: { name: string; message?: string; assertionResults: { fullName: string; status: string }[] }[];
  } | null = null;
  try {
    json = JSON.parse(readFileSync(report, "utf8"));
  } catch {
    json = null;
  }
  if (!json) return { outcome: "error", seconds, log };
  if (code === 0 && json.numFailedTests === 0 && json.numFailedTestSuites === 0 && json.numTotalTests > 0)
    return { outcome: "passed", seconds, log };
  if (json.numFailedTests > 0 || json.numFailedTestSuites > 0) {
    let first: string | undefined;
    for (const f of json.testResults) {
      const a = f.assertionResults.find((x) => x.status === "failed");
      if (a) first = `${rel(f.name)} > ${a.fullName}`;
      else if (f.message) first = `${rel(f.name)}: ${f.message.split("\n")[0]!.slice(0, 160)}`;
      if (first) break;
    }
    return { outcome: "failed", firstFailure: first, seconds, log };
  }
  return { outcome: "error", seconds, log };
}

// ------------------------------------------------------------------ main

function parseArgs(argv: string[]) {
  const o = { only: [] as string[], list: false, waitDirtySeconds: 180 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--list") o.list = true;
    else if (a === "--only") o.only.push(...(argv[++i] ?? "").split(",").filter(Boolean));
    else if (a === "--wait-dirty") o.waitDirtySeconds = Number(argv[++i]);
    else throw new Error(`unknown argument ${a} (use --only <module|id>[,...], --list, --wait-dirty <s>)`);
  }
  return o;
}

function check(m: Mutant): "ok" | "stale" | "ambiguous" {
  const text = readFileSync(join(ROOT, m.file), "utf8");
  const n = count(text, m.find);
  return n === 0 ? "stale" : n > 1 ? "ambiguous" : "ok";
}

function validate(): void {
  const ids = new Set<string>();
  for (const m of MUTANTS) {
    if (ids.has(m.id)) throw new Error(`duplicate mutant id ${m.id}`);
    ids.add(m.id);
    if (!MODULES.includes(m.module as (typeof MODULES)[number]) && m.module !== "out-of-scope")
      throw new Error(`mutant ${m.id}: unknown module ${m.module}`);
    if (m.find === m.replace) throw new Error(`mutant ${m.id}: replacement equals the snippet`);
    for (const t of m.tests) if (!existsSync(join(ROOT, t))) throw new Error(`mutant ${m.id}: no test file ${t}`);
  }
}

function summarise(rows: Row[]) {
  const modules: Record<string, Record<string, number | null>> = {};
  for (const mod of [...MODULES, "out-of-scope"]) {
    const rs = rows.filter((r) => r.module === mod);
    if (!rs.length) continue;
    const c = (s: Status) => rs.filter((r) => r.status === s).length;
    const detected = c("killed") + c("timeout");
    const scored = detected + c("survived");
    modules[mod] = {
      mutants: rs.length,
      killed: c("killed"),
      timeout: c("timeout"),
      survived: c("survived"),
      not_scored: rs.length - scored,
      score_percent: scored ? Math.round((1000 * detected) / scored) / 10 : null,
    };
  }
  const inScope = rows.filter((r) => r.module !== "out-of-scope");
  const detected = inScope.filter((r) => r.status === "killed" || r.status === "timeout").length;
  const scored = detected + inScope.filter((r) => r.status === "survived").length;
  return {
    modules,
    total: {
      mutants: inScope.length,
      detected,
      scored,
      score_percent: scored ? Math.round((1000 * detected) / scored) / 10 : null,
    },
  };
}

function writeResults(rows: Row[], meta: Record<string, unknown>): void {
  const summary = summarise(rows);
  writeFileSync(RESULTS_JSON, JSON.stringify({ ...meta, summary, mutants: rows }, null, 2) + "\n");
  const md: string[] = [
    "# Mutation check",
    "",
    `Generated by \`npm run mutation\` (scripts/mutation.ts, mutants in scripts/mutants.ts) at ${meta.finished_at}, commit ${meta.commit}.`,
    "Score = (killed + timeout) / (killed + timeout + survived). Stale, dirty, invalid or errored mutants are not scored and fail the run.",
    "",
    "| module | files | mutants | killed | timeout | survived | not scored | score |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const [mod, s] of Object.entries(summary.modules)) {
    const files = [...new Set(rows.filter((r) => r.module === mod).map((r) => r.file))].join(", ");
    md.push(
      `| ${mod} | ${files} | ${s.mutants} | ${s.killed} | ${s.timeout} | ${s.survived} | ${s.not_scored} | ${s.score_percent ?? "-"} % |`,
    );
  }
  md.push(
    `| **in scope** | | ${summary.total.mutants} | | | | | **${summary.total.score_percent ?? "-"} %** |`,
    "",
    "## Survivors and mutants not scored",
    "",
  );
  const bad = rows.filter((r) => r.status !== "killed" && r.status !== "timeout");
  if (!bad.length) md.push("None.");
  for (const r of bad) md.push(`- \`${r.id}\` (${r.status}): ${r.description}.${r.note ? ` ${r.note}` : ""}`);
  const found = rows.filter((r) => r.history);
  if (found.length) {
    md.push("", "## Found surviving earlier, and the test that kills it now", "");
    for (const r of found) md.push(`- \`${r.id}\` (now ${r.status}): ${r.history}.`);
  }
  md.push("", "## Every mutant", "", "| id | module | status | planted bug | killed by |", "|---|---|---|---|---|");
  for (const r of rows)
    md.push(
      `| ${r.id} | ${r.module} | ${r.status} | ${r.description.replace(/\|/g, "\\|")} | ${(r.killed_by ?? "").replace(/\|/g, "\\|")} |`,
    );
  md.push("", METHOD.trim());
  writeFileSync(RESULTS_MD, md.join("\n") + "\n");
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  validate();
  recoverJournal();
  const selected = opts.only.length ? MUTANTS.filter((m) => opts.only.includes(m.module) || opts.only.includes(m.id)) : MUTANTS;
  if (opts.only.length && !selected.length) throw new Error(`--only ${opts.only.join(",")} matches no module or mutant`);

  if (opts.list) {
    let bad = 0;
    for (const m of selected) {
      const c = check(m);
      if (c !== "ok") bad++;
      console.log(`${c === "ok" ? "  " : "!!"} ${m.id.padEnd(28)} ${m.module.padEnd(12)} ${c.padEnd(9)} ${m.description}`);
      console.log(`   ${"".padEnd(28)} ${m.project}: ${m.tests.join(" ")}`);
    }
    console.log(`\n${selected.length} mutants, ${bad} stale or ambiguous`);
    process.exit(bad ? 1 : 0);
  }

  const commit = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).stdout.trim();
  const started = new Date().toISOString();
  const rows: Row[] = [];
  const baselines = new Map<string, TestRun>();

  for (const [i, m] of selected.entries()) {
    const row: Row = { ...describeMutant(m), status: "not_run" };
    rows.push(row);
    const head = `[${String(i + 1).padStart(2)}/${selected.length}] ${m.id.padEnd(28)}`;
    const c = check(m);
    if (c !== "ok") {
      row.status = c;
      console.log(`${head} ${c.toUpperCase()}: snippet ${c === "stale" ? "not found" : "found more than once"} in ${m.file}`);
      continue;
    }
    // A baseline per test set: the files must pass unmutated, or a failure proves nothing.
    const setKey = `${m.project}:${m.tests.join(",")}`;
    let base = baselines.get(setKey);
    if (!base) {
      base = await runTests(m.project, m.tests, 600_000, `baseline-${i}`);
      baselines.set(setKey, base);
      console.log(`      baseline ${setKey}: ${base.outcome} in ${base.seconds} s`);
    }
    if (base.outcome !== "passed") {
      row.status = "error";
      row.killed_by = `baseline ${base.outcome}: ${base.firstFailure ?? base.log}`;
      console.log(`${head} ERROR: the tests fail without the mutant (${base.firstFailure ?? base.log})`);
      continue;
    }
    const file = join(ROOT, m.file);
    let waited = 0;
    while (isDirty(file) && waited < opts.waitDirtySeconds) {
      if (waited === 0) console.log(`${head} ${m.file} has uncommitted changes; waiting up to ${opts.waitDirtySeconds} s`);
      await new Promise((r) => setTimeout(r, 10_000));
      waited += 10;
    }
    if (isDirty(file)) {
      row.status = "dirty";
      console.log(`${head} DIRTY: ${m.file} has uncommitted changes; not touched`);
      continue;
    }
    const original = readFileSync(file);
    const mutated = original.toString("utf8").replace(m.find, () => m.replace);
    try {
      transformSync(mutated, { loader: "ts", format: "esm", target: "es2022" });
    } catch (e) {
      row.status = "invalid";
      row.killed_by = String(e).split("\n")[0];
      console.log(`${head} INVALID: the mutated file does not parse`);
      continue;
    }
    const timeoutMs = Math.max(120_000, base.seconds * 4000);
    let run: TestRun;
    try {
      plant(m, original);
      run = await runTests(m.project, m.tests, timeoutMs, m.id);
    } finally {
      if (planted) restore(planted);
    }
    if (sha(readFileSync(file)) !== sha(original)) throw new Error(`${m.file} is not byte-identical after the restore`);
    row.seconds = run.seconds;
    row.status =
      run.outcome === "failed"
        ? "killed"
        : run.outcome === "passed"
          ? "survived"
          : run.outcome === "timeout"
            ? "timeout"
            : "error";
    if (run.firstFailure) row.killed_by = run.firstFailure;
    if (run.outcome === "error") row.killed_by = `test run crashed; log ${run.log}`;
    console.log(`${head} ${row.status.toUpperCase().padEnd(8)} ${String(run.seconds).padStart(6)} s  ${m.description}`);
    if (row.status === "killed") console.log(`${"".padEnd(head.length)}   by ${row.killed_by}`);
  }

  // Merge into the previous results: rows of mutants not selected this time are kept; removed mutants are dropped.
  let all = rows;
  if (opts.only.length && existsSync(RESULTS_JSON)) {
    const prev = (JSON.parse(readFileSync(RESULTS_JSON, "utf8")) as { mutants: Row[] }).mutants;
    const byId = new Map(prev.map((r) => [r.id, r]));
    for (const r of rows) byId.set(r.id, r);
    all = MUTANTS.map((m) => ({ status: "not_run" as Status, ...byId.get(m.id), ...describeMutant(m) }));
  }
  writeResults(all, {
    generated_by: "npm run mutation (scripts/mutation.ts)",
    commit,
    started_at: started,
    finished_at: new Date().toISOString(),
    only: opts.only.length ? opts.only : undefined,
    node: process.version,
  });
  const s = summarise(rows);
  console.log(
    "\n" +
      Object.entries(s.modules)
        .map(([k, v]) => `${k}: ${v.score_percent ?? "-"} %`)
        .join("  "),
  );
  console.log(`in scope: ${s.total.detected}/${s.total.scored} detected (${s.total.score_percent ?? "-"} %)`);
  console.log(`results: ${rel(RESULTS_JSON)}, ${rel(RESULTS_MD)}`);
  const failures = rows.filter((r) => ["stale", "ambiguous", "dirty", "invalid", "error"].includes(r.status));
  if (failures.length) {
    console.error(`${failures.length} mutant(s) could not be scored: ${failures.map((r) => `${r.id} (${r.status})`).join(", ")}`);
    process.exit(1);
  }
}

await main();
