import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";

/**
 * Issue 12 defect 1: a 20000x50 PNG to /v1/protect killed the runner. In-process the crash was: face-api's
 * `detectAllFaces` returns a thenable whose `then(onfulfilled)` ignores the rejection callback, so the detector's
 * RangeError (padding the image to a 20000x20000 square, `Invalid typed array length: 1197000000`) never reached
 * our `await` (which hung) and surfaced as an unhandled rejection; tfjs-backend-wasm's emscripten glue had
 * installed `process.on("unhandledRejection", r => { throw r })`, which turned it into a fatal exception (exit 7).
 * Run in a child process, so that the test sees the process die instead of dying with it.
 */
const CHILD = new URL("./face-poison.child.ts", import.meta.url).pathname;
const SERVICE_CHILD = new URL("./face-poison-service.child.ts", import.meta.url).pathname;
const TSX = new URL("../../node_modules/.bin/tsx", import.meta.url).pathname;

function runChild(path: string) {
  const child = spawnSync(TSX, [path], { encoding: "utf8", timeout: 170_000, env: { ...process.env } });
  const lines = child.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { child, lines, step: (name: string) => lines.find((l) => l.step === name) };
}

describe("the poison image (20000x50) through face analysis", { timeout: 180_000 }, () => {
  it("fails protect's and verify's face.analyze with unsupported_aspect_ratio, and the process lives", () => {
    const { child, step } = runChild(CHILD);
    expect(child.status, `child exited ${child.status} (${child.signal}): ${child.stderr.slice(-600)}`).toBe(0);
    expect(step("decoded")).toMatchObject({ width: 20_000, height: 50 });
    // Below the geometry check the detector works on a bounded copy: noise has no faces.
    expect(step("analyze")).toEqual({ step: "analyze", outcome: "resolved", faces: 0 });
    for (const flow of ["verify", "protect"])
      expect(step(flow)).toEqual({ step: flow, outcome: "rejected", code: "unsupported_aspect_ratio", retryable: false });
    expect(step("done")).toBeDefined();
  });

  it("a runner service fails every kind of pipeline error with a stable code and keeps serving", () => {
    const { child, lines, step } = runChild(SERVICE_CHILD);
    const jobs = lines.filter((l) => l.step === "job") as { name: string; state: string; attempts: number; fail?: unknown }[];
    const failure = (name: string) => jobs.find((j) => j.name === name);
    expect(jobs.length, child.stderr.slice(-600)).toBe(6);
    for (const name of [
      "test.range_error",
      "test.throws_string",
      "test.throws_undefined",
      "test.floating_rejection",
      "test.dropping_thenable",
    ]) {
      expect(failure(name), name).toMatchObject({
        state: "failed",
        attempts: 1,
        fail: { error: { type: "pipeline_error" }, retryable: false },
      });
    }
    expect(failure("test.range_error")!.fail).toMatchObject({
      error: { message: expect.stringContaining("RangeError: Invalid typed array length") },
    });
    expect(failure("test.throws_string")!.fail).toMatchObject({
      error: { message: expect.stringContaining("non-Error thrown: a string") },
    });
    expect(failure("face.analyze verify poison")).toMatchObject({
      state: "failed",
      fail: { error: { type: "unsupported_aspect_ratio" }, retryable: false },
    });
    expect(step("after")).toEqual({ step: "after", state: "completed" });
    // The guard named the jobs whose errors escaped (floating rejection, dropped thenable).
    expect((step("escaped_logs")!.job_ids as string[]).length).toBe(2);
    // A rejection outside any job: logged, then exit 70 for the supervisor to restart the runner.
    expect(step("guard_log")).toMatchObject({ error: "Error: outside any job" });
    expect(step("still_alive")).toBeUndefined();
    expect(child.status).toBe(70);
  });
});
