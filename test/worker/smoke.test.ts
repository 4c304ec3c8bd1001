import { exports } from "cloudflare:workers";
import { expect, it } from "vitest";

it("healthz", async () => {
  const res = await exports.default.fetch("http://vigil.test/healthz");
  expect(res.status).toBe(200);
});
