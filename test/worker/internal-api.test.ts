import { describe, expect, it } from "vitest";
import type { AppEnv } from "../../worker/src/env.ts";
import { createJob, registerCompletionHook } from "../../worker/src/index.ts";
import { ApiError } from "../../worker/src/problem.ts";
import { call, leaseJob, runnerCall, testEnv, uniquePng, type JobJson } from "./helpers.ts";

const env = testEnv as unknown as AppEnv;
const seen: { id: string; result: unknown }[] = [];
// Hooks are registered at module load, as worker modules do.
registerCompletionHook("inspect", ({ job }) => {
  seen.push({ id: job.id, result: job.result });
});
registerCompletionHook("inspect", () => {
  throw new Error("a broken hook must not fail the report");
});

describe("internal job API", () => {
  it("createJob queues a job for an object already in R2; completion hooks run once per job", async () => {
    const key = "tenants/ten_dev/uploads/internal-api-test";
    const bytes = uniquePng();
    await env.OBJECTS.put(key, bytes);
    const { job } = await createJob(env, {
      tenantId: "ten_dev",
      operation: "inspect",
      inputs: [{ key, content_type: "image/png", bytes: bytes.length }],
      origin: "http://vigil.test",
    });
    expect(job.status).toBe("queued");
    const got = (await (await call(`/v1/jobs/${job.id}`)).json()) as JobJson;
    expect(got.operation).toBe("inspect");

    const l = await leaseJob(job.id);
    const body = { lease_id: l.lease_id, result: { faces: 0 } };
    expect((await runnerCall(`/internal/runner/jobs/${job.id}/complete`, body)).status).toBe(200);
    expect((await runnerCall(`/internal/runner/jobs/${job.id}/complete`, body)).status).toBe(200); // duplicate
    expect(seen.filter((s) => s.id === job.id)).toEqual([{ id: job.id, result: { faces: 0 } }]);
  });

  it("createJob validates params and refuses inputs outside the tenant's prefix", async () => {
    const input = [{ key: "tenants/ten_dev/uploads/x", content_type: "image/png", bytes: 1 }];
    await expect(
      createJob(env, {
        tenantId: "ten_dev",
        operation: "watermark.embed",
        inputs: input,
        params: { bits: "xyz" },
        origin: "http://vigil.test",
      }),
    ).rejects.toMatchObject({ status: 422, code: "invalid_params" });
    await expect(
      createJob(env, {
        tenantId: "ten_dev",
        operation: "inspect",
        inputs: [{ ...input[0]!, key: "tenants/other/uploads/x" }],
        origin: "http://vigil.test",
      }),
    ).rejects.toBeInstanceOf(ApiError);
    await expect(createJob(env, { tenantId: "ten_dev", operation: "nope", inputs: input, origin: "" })).rejects.toMatchObject({
      status: 404,
    });
  });
});
