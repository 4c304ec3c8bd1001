import type { TestProject } from "vitest/node";
import { startTestStack } from "../e2e/harness.ts";

export interface SdkStack {
  url: string;
  apiKey: string;
  operatorKey: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    sdkStack: SdkStack;
  }
}

export const SDK_STACK_PORT = 18707;
/**
 * The stack's inline body limit, lowered from 10 MiB so a test image of a few hundred KB exercises the signed-upload
 * path the SDK takes after a 413 use_signed_upload (the SDK's own limit stays at its 10 MiB default).
 */
export const SDK_STACK_INLINE_LIMIT = 256 * 1024;

/** One local stack (wrangler dev and one runner) for every SDK and CLI test file. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { stack, cleanup } = await startTestStack({
    port: SDK_STACK_PORT,
    runners: 1,
    vars: { MAX_INLINE_UPLOAD_BYTES: String(SDK_STACK_INLINE_LIMIT) },
  });
  project.provide("sdkStack", {
    url: stack.url,
    apiKey: stack.vars.VIGIL_DEV_KEY!,
    operatorKey: stack.vars.VIGIL_OPERATOR_KEY!,
  });
  return cleanup;
}
