import type { TestProject } from "vitest/node";
import { startBrowserStack } from "./harness.ts";

/** One local stack for every browser test file (starting one takes 5-15 s of the 2 cores); stopped after the last. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { info, cleanup } = await startBrowserStack();
  project.provide("stack", info);
  return cleanup;
}
