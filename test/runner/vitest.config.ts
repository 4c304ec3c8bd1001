import { defineConfig } from "vitest/config";

// Runner tests run in Node against real sharp, onnxruntime and HTTP servers started by the tests.
export default defineConfig({
  test: {
    name: "runner",
    include: ["test/runner/**/*.test.ts"],
    root: new URL("../..", import.meta.url).pathname,
    environment: "node",
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
