import { describe, expect, it } from "vitest";
import type { PublicJob } from "../../worker/src/schemas.ts";
import { call, completeJob, leaseJob, postImage, runnerCall, testEnv } from "./helpers.ts";

/** A real 64x64 PNG: above every operation's minimum side, so protect accepts it up front. */
const PNG_64 = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAn0lEQVRoge2SQQkAQRDDKqxKTknkr4h7hIFCBKSh4etpohuwAdUrsgv1LtEN2IDqFdmFepfoBmxA9YrsQr1LdAM2oHpFdqHeJboBG1C9IrtQ7xLdgA2oXpFdqHeJbsAGVK/ILtS7RDdgA6pXZBfqXaIbsAHVK7IL9S7RDdiA6hXZhXqX6AZsQPWK7EK9S3QDNqB6RXah3iW6ARtQveIfHsx54PGaBDu2AAAAAElFTkSuQmCC",
  ),
  (c) => c.charCodeAt(0),
);

const flowOf = async (id: string) => (await (await call(`/v1/jobs/${id}`)).json()) as Flow;
const assetIds = async () =>
  ((await (await call("/v1/assets?limit=200")).json()) as { data: { id: string }[] }).data.map((a) => a.id);
const assetRow = (id: string) => testEnv.DB.prepare("SELECT id FROM identity_assets WHERE id = ?").bind(id).first();

/** protect up to the point where face analysis is in and the embed job exists. */
async function protectUntilEmbed(): Promise<{ flow: Flow; assetId: string; embedId: string }> {
  const res = await postImage("/v1/protect", PNG_64);
  expect(res.status).toBe(202);
  const flow = (await res.json()) as Flow;
  await completeJob(flow.stages.find((s) => s.name === "face.analyze")?.id!, "face.analyze", {
    faces: [],
    identity_code_bits: 32,
  });
  const row = await testEnv.DB.prepare("SELECT asset_id, mark_job FROM identity_flows WHERE id = ?")
    .bind(flow.id)
    .first<{ asset_id: string; mark_job: string }>();
  expect(row?.asset_id).toMatch(/^ast_/);
  return { flow, assetId: row!.asset_id, embedId: row!.mark_job };
}

/** A protect or verify job as GET /v1/jobs/{id} serves it (worker/src/schemas.ts Job). */
type Flow = Omit<PublicJob, "output"> & { output: Record<string, any> | null };

describe("an asset exists only once its marked image does", () => {
  it("between face analysis and the marked image, the record is neither listed nor returned", async () => {
    const { assetId, embedId } = await protectUntilEmbed();
    expect(await assetRow(assetId)).not.toBeNull();
    expect(await assetIds()).not.toContain(assetId);
    expect((await call(`/v1/assets/${assetId}`)).status).toBe(404);
    const before = Date.now();
    await completeJob(embedId, "watermark.embed", {}, PNG_64);
    expect(await assetIds()).toContain(assetId);
    const asset = (await (await call(`/v1/assets/${assetId}`)).json()) as { protected_at: string };
    // protected_at is when the marked image came to exist, not when the record was written.
    expect(Date.parse(asset.protected_at)).toBeGreaterThanOrEqual(before - 1);
  });

  it("a failed embed leaves no asset: the flow fails and the record is discarded", async () => {
    const { flow, assetId, embedId } = await protectUntilEmbed();
    const leased = await leaseJob(embedId, "watermark.embed");
    const failed = await runnerCall(`/internal/runner/jobs/${embedId}/fail`, {
      lease_id: leased.lease_id,
      error: { type: "image_too_small", message: "watermarking needs at least 32 px per side" },
      retryable: false,
    });
    expect(failed.status).toBe(200);
    const after = await flowOf(flow.id);
    expect(after.status).toBe("failed");
    expect(await assetRow(assetId)).toBeNull();
    expect(await assetIds()).not.toContain(assetId);
    expect((await call(`/v1/assets/${assetId}`)).status).toBe(404);
  });
});
