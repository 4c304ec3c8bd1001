import { describe, expect, it } from "vitest";
import { call, createTenantKey, expectProblem, operatorCall, postImage } from "./helpers.ts";

/**
 * Issue 12, defect 5: the RateLimit fields the auth middleware set never reached the client. Every authenticated
 * answer carries them now (draft-ietf-httpapi-ratelimit-headers: RateLimit-Policy and RateLimit, plus the
 * RateLimit-Limit / -Remaining / -Reset trio), whatever the handler returned. The bucket holds `burst` tokens and
 * refills at perMinute / 60 per second, so it is full again `burst * 60 / perMinute` seconds after it was empty.
 */

function fields(res: Response) {
  return {
    policy: res.headers.get("ratelimit-policy"),
    now: res.headers.get("ratelimit"),
    limit: res.headers.get("ratelimit-limit"),
    remaining: res.headers.get("ratelimit-remaining"),
    reset: res.headers.get("ratelimit-reset"),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("RateLimit fields", () => {
  it("on a JSON answer, a raw image job create and a problem answer, counting down one bucket", async () => {
    // 6 per minute = one token every 10 s; a burst of 3 refills in 30 s.
    const { key } = await createTenantKey(["inspect"], { rate_limit_per_minute: 6, rate_limit_burst: 3 });
    const list = await call("/v1/jobs", { key });
    expect(list.status).toBe(200);
    expect(fields(list)).toEqual({
      policy: '"tenant";q=3;w=30',
      now: '"tenant";r=2;t=10',
      limit: "3",
      remaining: "2",
      reset: "10",
    });
    const job = await postImage("/v1/inspect", undefined, { key });
    expect(job.status).toBe(202);
    expect(fields(job)).toEqual({
      policy: '"tenant";q=3;w=30',
      now: '"tenant";r=1;t=20',
      limit: "3",
      remaining: "1",
      reset: "20",
    });
    const missing = await call("/v1/jobs/job_nope", { key });
    expect(fields(missing)).toEqual({
      policy: '"tenant";q=3;w=30',
      now: '"tenant";r=0;t=30',
      limit: "3",
      remaining: "0",
      reset: "30",
    });
    await expectProblem(missing, 404, "job_not_found");

    // The bucket is empty: 429, with Retry-After the time to the next token (exactly 60 / perMinute = 10 s).
    const limited = await call("/v1/jobs", { key });
    expect(limited.headers.get("retry-after")).toBe("10");
    expect(fields(limited)).toEqual({
      policy: '"tenant";q=3;w=30',
      now: '"tenant";r=0;t=30',
      limit: "3",
      remaining: "0",
      reset: "30",
    });
    await expectProblem(limited, 429, "rate_limited");
  });

  it("on a 403 from a scope check and on the operator's answers", async () => {
    const { key } = await createTenantKey(["restore"], { rate_limit_per_minute: 600, rate_limit_burst: 100 });
    const denied = await postImage("/v1/inspect", undefined, { key });
    expect(fields(denied)).toMatchObject({ policy: '"tenant";q=100;w=10', limit: "100", remaining: "99" });
    await expectProblem(denied, 403, "insufficient_scope");
    const op = await operatorCall("/v1/admin/tenants");
    expect(op.status).toBe(200);
    expect(op.headers.get("ratelimit-policy")).toMatch(/^"operator";q=\d+;w=\d+$/);
    expect(op.headers.get("ratelimit")).toMatch(/^"operator";r=\d+;t=\d+$/);
  });

  it("the bucket refills over time", async () => {
    // 120 per minute = one token every 0.5 s; a burst of 1.
    const { key } = await createTenantKey(["inspect"], { rate_limit_per_minute: 120, rate_limit_burst: 1 });
    expect((await call("/v1/jobs", { key })).status).toBe(200);
    const limited = await call("/v1/jobs", { key });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("1"); // 0.5 s, in whole seconds rounded up
    await sleep(600);
    const again = await call("/v1/jobs", { key });
    expect(again.status).toBe(200);
    expect(fields(again)).toMatchObject({ remaining: "0", now: '"tenant";r=0;t=1' });
  });
});
