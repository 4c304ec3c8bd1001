import { defineConfig } from "vitest/config";

// SDK and CLI: Node tests against one real local stack that global-setup.ts starts for all files (files run one at a
// time, since they share it and its single runner).
export default defineConfig({
  test: {
    name: "sdk",
    include: ["test/sdk/**/*.test.ts"],
    root: new URL("../..", import.meta.url).pathname,
    environment: "node",
    globalSetup: ["test/sdk/global-setup.ts"],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
