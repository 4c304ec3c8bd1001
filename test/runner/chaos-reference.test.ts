import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "./helpers.ts";

/**
 * The independent CPython check of the identity cipher (worker/src/identity/reference/chaos_ref.py): it recomputes
 * the published vectors with Python's own float64 arithmetic and hmac/hashlib HKDF, sharing no code with the
 * TypeScript implementation. Here the vectors come fresh from the TypeScript implementation (make-vectors.ts),
 * so a change to worker/src/identity that the committed fixture has not caught up with is still checked.
 *
 * Runs in Node (this project) because it drives two processes; the cipher itself is plain WebCrypto + float64.
 */

const PYTHON = "/usr/bin/python3"; // Debian's interpreter (see shared notes); chaos_ref.py needs only the stdlib
const REF = join(ROOT, "worker/src/identity/reference/chaos_ref.py");
const MAKE_VECTORS = join(ROOT, "worker/src/identity/reference/make-vectors.ts");
const FIXTURE = join(ROOT, "test/fixtures/identity-vectors.json");
const HAS_PYTHON = spawnSync(PYTHON, ["--version"]).status === 0;
// CI installs Debian's python3 (.ci/run) and must run this; elsewhere a missing interpreter skips it, loudly.
if (!HAS_PYTHON && !process.env.CI)
  console.warn(
    `\n*** chaos reference: ${PYTHON} is missing (apt-get install python3); the CPython cross-check of the identity cipher is SKIPPED ***\n`,
  );

interface Vectors {
  chaos: { first_bytes_hex: string; x_after: number; y_after: number }[];
  cipher: { cipher_hex: string }[];
  payload: { payload_hex: string }[];
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The TypeScript implementation's vectors, as printed by make-vectors.ts. */
function typescriptVectors(): Vectors {
  const r = spawnSync(join(ROOT, "node_modules/.bin/tsx"), [MAKE_VECTORS], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Vectors;
}

/**
 * Runs chaos_ref.py against `vectors`. The script reads test/fixtures/identity-vectors.json four directories above
 * itself, so it runs as a copy in a scratch tree with that layout; the committed fixture is left alone.
 */
function runReference(vectors: Vectors): { status: number | null; lines: string[]; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), "vigil-chaos-ref-"));
  dirs.push(dir);
  const script = join(dir, "worker/src/identity/reference/chaos_ref.py");
  mkdirSync(join(dir, "worker/src/identity/reference"), { recursive: true });
  mkdirSync(join(dir, "test/fixtures"), { recursive: true });
  copyFileSync(REF, script);
  writeFileSync(join(dir, "test/fixtures/identity-vectors.json"), JSON.stringify(vectors, null, 2));
  const r = spawnSync(PYTHON, [script], { encoding: "utf8", timeout: 60_000 });
  return { status: r.status, lines: r.stdout.trim().split("\n"), stderr: r.stderr };
}

/** One line per vector: "chaos True", "cipher True", "payload True <hex>". */
function verdicts(lines: string[]): string[] {
  return lines.map((l) => l.split(" ").slice(0, 2).join(" "));
}

describe.skipIf(!HAS_PYTHON && !process.env.CI)("CPython reference of the identity cipher (chaos_ref.py)", () => {
  it("the TypeScript implementation's vectors are the committed fixture", () => {
    expect(typescriptVectors()).toEqual(JSON.parse(readFileSync(FIXTURE, "utf8")));
  });

  it("recomputes every TypeScript vector bit for bit: chaotic stream and float64 state, cipher, payloads", () => {
    const v = typescriptVectors();
    const r = runReference(v);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(verdicts(r.lines)).toEqual([
      ...v.chaos.map(() => "chaos True"),
      ...v.cipher.map(() => "cipher True"),
      ...v.payload.map(() => "payload True"),
    ]);
    // The payload lines carry what Python computed: the same hex as TypeScript.
    expect(r.lines.slice(-v.payload.length).map((l) => l.split(" ")[2])).toEqual(v.payload.map((p) => p.payload_hex));
    expect(v.chaos.length + v.cipher.length + v.payload.length).toBeGreaterThanOrEqual(10);
  });

  it("fails when a vector differs (one float64 ulp of state, one cipher bit, one payload bit)", () => {
    const v = typescriptVectors();
    const flip = (h: string) => (parseInt(h[0]!, 16) ^ 1).toString(16) + h.slice(1);
    v.chaos[1]!.x_after = v.chaos[1]!.x_after + Number.EPSILON * v.chaos[1]!.x_after;
    v.cipher[2]!.cipher_hex = flip(v.cipher[2]!.cipher_hex);
    v.payload[0]!.payload_hex = flip(v.payload[0]!.payload_hex);
    const r = runReference(v);
    expect(r.status).toBe(1);
    expect(verdicts(r.lines)).toEqual([
      "chaos True",
      "chaos False",
      "chaos True",
      "cipher True",
      "cipher True",
      "cipher False",
      "payload False",
      "payload True",
      "payload True",
      "payload True",
    ]);
  });
});
