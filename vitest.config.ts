import { defineConfig } from "vitest/config";

// Each suite owns its config: worker tests run inside workerd, runner and e2e tests in Node.
export default defineConfig({
  test: {
    projects: ["test/*/vitest.config.ts"],
  },
});
