import { defineConfig } from "vitest/config";

// End-to-end: starts the real local stack (wrangler dev + runner processes), so files run one at a time.
export default defineConfig({
  test: {
    name: "e2e",
    include: ["test/e2e/**/*.test.ts"],
    root: new URL("../..", import.meta.url).pathname,
    environment: "node",
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
