import { defineConfig } from "vitest/config";

// Browser tests: headless Chromium against the real local stack, which global-setup.ts starts once for all files.
export default defineConfig({
  test: {
    name: "browser",
    include: ["test/browser/**/*.test.ts"],
    root: new URL("../..", import.meta.url).pathname,
    environment: "node",
    globalSetup: ["test/browser/global-setup.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
