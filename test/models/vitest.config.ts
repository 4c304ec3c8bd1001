import { defineConfig } from "vitest/config";

// Checks of the Python training-side code (models/), driven from Node through Debian's /usr/bin/python3.
export default defineConfig({
  test: {
    name: "models",
    include: ["test/models/**/*.test.ts"],
    root: new URL("../..", import.meta.url).pathname,
    environment: "node",
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
