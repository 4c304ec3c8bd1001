import type { TestProject } from "vitest/node";
import { startBrowserStack } from "./harness.ts";

/**
 * One local stack for every browser test file, stopped after the last: starting one (wrangler and a runner) took
 * 16 s here.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { info, cleanup } = await startBrowserStack();
  project.provide("stack", info);
  return cleanup;
}
