import { describe, expect, it } from "vitest";
import { strictestGeometry } from "../../contract/geometry.ts";
import { OPERATIONS } from "../../contract/operations.ts";
import { readImageSize } from "../../worker/src/lib/image-header.ts";
import { call, createTenantKey, expectProblem, pngOf, postImage, postJson, testEnv, type JobJson } from "./helpers.ts";

/**
 * Images a runner would refuse for their format or shape are refused when the job (or flow) is created, with a
 * problem+json, before anything is stored: issue 12 defects 1 (the 20000x50 poison image), 6 (BMP) and 7 (a 1x1
 * image to protect left an asset behind).
 */

/** Real files written by sharp 0.35.5 (333x17, one colour), each named with what sharp reads back. */
const FILES: Record<string, string> = {
  jpeg: "/9j/4QC8RXhpZgAASUkqAAgAAAAGABIBAwABAAAABgAAABoBBQABAAAAVgAAABsBBQABAAAAXgAAACgBAwABAAAAAgAAABMCAwABAAAAAQAAAGmHBAABAAAAZgAAAAAAAAA4YwAA6AMAADhjAADoAwAABgAAkAcABAAAADAyMTABkQcABAAAAAECAwAAoAcABAAAADAxMDABoAMAAQAAAP//AAACoAQAAQAAAE0BAAADoAQAAQAAABEAAAAAAAAA/+IB8ElDQ19QUk9GSUxFAAEBAAAB4GxjbXMEIAAAbW50clJHQiBYWVogB+IAAwAUAAkADgAdYWNzcE1TRlQAAAAAc2F3c2N0cmwAAAAAAAAAAAAAAAAAAPbWAAEAAAAA0y1oYW5keem/Vlo+AbaDI4VVRvdPqgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAKZGVzYwAAAPwAAAAkY3BydAAAASAAAAAid3RwdAAAAUQAAAAUY2hhZAAAAVgAAAAsclhZWgAAAYQAAAAUZ1hZWgAAAZgAAAAUYlhZWgAAAawAAAAUclRSQwAAAcAAAAAgZ1RSQwAAAcAAAAAgYlRSQwAAAcAAAAAgbWx1YwAAAAAAAAABAAAADGVuVVMAAAAIAAAAHABzAFIARwBCbWx1YwAAAAAAAAABAAAADGVuVVMAAAAGAAAAHABDAEMAMAAAWFlaIAAAAAAAAPbWAAEAAAAA0y1zZjMyAAAAAAABDD8AAAXd///zJgAAB5AAAP2S///7of///aIAAAPcAADAcVhZWiAAAAAAAABvoAAAOPIAAAOPWFlaIAAAAAAAAGKWAAC3iQAAGNpYWVogAAAAAAAAJKAAAA+FAAC2xHBhcmEAAAAAAAMAAAACZmkAAPKnAAANWQAAE9AAAApb/9sAQwAQCwwODAoQDg0OEhEQExgoGhgWFhgxIyUdKDozPTw5Mzg3QEhcTkBEV0U3OFBtUVdfYmdoZz5NcXlwZHhcZWdj/9sAQwEREhIYFRgvGhovY0I4QmNjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj/8AAEQgAEQFNAwEiAAIRAQMRAf/EABUAAQEAAAAAAAAAAAAAAAAAAAAF/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/EABYBAQEBAAAAAAAAAAAAAAAAAAADBv/EABQRAQAAAAAAAAAAAAAAAAAAAAD/2gAMAwEAAhEDEQA/AJICDTgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP//Z", // 1020 B jpeg 333x17 orient 6
  jpeg_progressive:
    "/9j/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wgARCAARAU0DASIAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAAAAT/xAAWAQEBAQAAAAAAAAAAAAAAAAAAAwX/2gAMAwEAAhADEAAAAZBPTAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA//xAAUEAEAAAAAAAAAAAAAAAAAAABg/9oACAEBAAEFAn3/xAAUEQEAAAAAAAAAAAAAAAAAAABQ/9oACAEDAQE/ASv/xAAUEQEAAAAAAAAAAAAAAAAAAABQ/9oACAECAQE/ASv/xAAUEAEAAAAAAAAAAAAAAAAAAABg/9oACAEBAAY/An3/xAAUEAEAAAAAAAAAAAAAAAAAAABg/9oACAEBAAE/IX3/2gAMAwEAAgADAAAAEAwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww//8QAFBEBAAAAAAAAAAAAAAAAAAAAUP/aAAgBAwEBPxAr/8QAFBEBAAAAAAAAAAAAAAAAAAAAUP/aAAgBAgEBPxAr/8QAFBABAAAAAAAAAAAAAAAAAAAAYP/aAAgBAQABPxB9/9k=", // 566 B jpeg 333x17 orient undefined
  png16:
    "iVBORw0KGgoAAAANSUhEUgAAAU0AAAAREAIAAACGObXoAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAZ0lEQVR42u3VMQ0AAAgEsVeCEvwHWeggdKmAWy6TSockSd5VApIk7ZwkSdo5SZK0c5Ik7VwIkiTtnCRJ2jlJkrRzkiTtXAiSJO2cJEnaOUmStHOSJO2cJEnaOUmStHOSJGnnJEn+dQEt+A5S/5AHpAAAAABJRU5ErkJggg==", // 181 B png 333x17 orient undefined
  webp_lossy:
    "UklGRnIAAABXRUJQVlA4IGYAAACwBQCdASpNAREAPtFosFMoJiSioMgBABoJaQDRAuqAO7HOMoB7qb6NqHOOTnWortlHOtRXaRAA/ulpGJuBnZ//jeP/FP/0Oam4QtzgXjuk3ZrSv2gzQbHvHo1OG26JjrIAAAAAAAA=", // 122 B webp 333x17 orient undefined
  webp_lossless: "UklGRiQAAABXRUJQVlA4TBcAAAAvTAEEAAdQjyKXp/8BICH8ny9F9D9FBgA=", // 44 B webp 333x17 orient undefined
  webp_alpha:
    "UklGRpwAAABXRUJQVlA4WAoAAAAQAAAATAEAEAAAQUxQSBAAAAABB1DAiAgACeH/fCmi/ykyVlA4IGYAAACwBQCdASpNAREAPtFosFMoJiSioMgBABoJaQDRAuqAO7HOMoB7qb6NqHOOTnWortlHOtRXaRAA/ulpGJuBnZ//jeP/FP/0Oam4QtzgXjuk3ZrSv2gzQbHvHo1OG26JjrIAAAAAAAA=", // 164 B webp 333x17 orient undefined
  gif: "R0lGODlhTQERAIAAAExpccgePCH5BAUAAAAALAAAAABNAREAAAJSjI+py+0Po5y02ouz3rz7D4biSJbmiabqyrbuC8fyTNf2jef6zvf+DwwKh8Si8YhMKpfMpvMJjUqn1Kr1is1qt9yu9wsOi8fksvmMTqvX7Da5AAA7", // 123 B gif 333x17 orient undefined
  tiff_le:
    "SUkqAFQAAAB4nO3TAQ0AMAjAMJRcyf0HWfhYWg/d9wdIW82hTnPI0xzyNIc8zSFPc8jTHPI0hzzNIU9zyNMc8jSHPM0hT3PI0xzyNIepO7r7E0MAEAAAAQMAAQAAAE0BAAABAQMAAQAAABEAAAACAQMAAwAAACoBAAADAQMAAQAAAAgAAAAGAQMAAQAAAAIAAAARAQQAAQAAAAgAAAASAQMAAQAAAAEAAAAVAQMAAQAAAAMAAAAWAQMAAQAAAAABAAAXAQQAAQAAAEsAAAAaAQUAAQAAABoBAAAbAQUAAQAAACIBAAAcAQMAAQAAAAEAAAAoAQMAAQAAAAIAAAA9AQMAAQAAAAIAAABTAQMAAwAAADABAAAAAAAAMzPLAAAACAAzM8sAAAAIAAgACAAIAAEAAQABAA==", // 310 B tiff 333x17 orient 1
};
const bytesOf = (b64: string) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));

/** A big-endian TIFF header with ImageWidth as SHORT and ImageLength as LONG (sharp writes little-endian only). */
function tiffBigEndian(width: number, height: number): Uint8Array {
  const b = new Uint8Array(8 + 2 + 2 * 12 + 4);
  const v = new DataView(b.buffer);
  b.set([0x4d, 0x4d, 0, 0x2a]);
  v.setUint32(4, 8);
  v.setUint16(8, 2);
  (v.setUint16(10, 256), v.setUint16(12, 3), v.setUint32(14, 1), v.setUint16(18, width));
  (v.setUint16(22, 257), v.setUint16(24, 4), v.setUint32(26, 1), v.setUint32(30, height));
  return b;
}

/** A minimal BMP: "BM" file header and a BITMAPINFOHEADER for a 64x64 24-bit image, then its pixels. */
function bmp(width = 64, height = 64): Uint8Array {
  const row = Math.ceil((width * 3) / 4) * 4;
  const b = new Uint8Array(54 + row * height);
  const v = new DataView(b.buffer);
  b.set([0x42, 0x4d]);
  v.setUint32(2, b.length, true);
  v.setUint32(10, 54, true);
  v.setUint32(14, 40, true);
  v.setInt32(18, width, true);
  v.setInt32(22, height, true);
  v.setUint16(26, 1, true);
  v.setUint16(28, 24, true);
  return b;
}

async function nothingStoredFor(tenantId: string, key: string) {
  expect(((await (await call("/v1/assets", { key })).json()) as { data: unknown[] }).data).toEqual([]);
  expect(((await (await call("/v1/jobs", { key })).json()) as { data: unknown[] }).data).toEqual([]);
  const flows = await testEnv.DB.prepare("SELECT COUNT(*) AS n FROM identity_flows WHERE tenant_id = ?")
    .bind(tenantId)
    .first<{ n: number }>();
  expect(flows!.n).toBe(0);
  expect((await testEnv.OBJECTS.list({ prefix: `tenants/${tenantId}/` })).objects).toEqual([]);
}

describe("reading width and height from the header bytes", () => {
  it("reads PNG, JPEG (baseline with EXIF orientation, progressive), WebP (lossy, lossless, VP8X), GIF and TIFF", () => {
    for (const [name, b64] of Object.entries(FILES))
      expect(readImageSize(bytesOf(b64)), name).toMatchObject({ width: 333, height: 17 });
    expect(readImageSize(tiffBigEndian(40, 70_000))).toEqual({ format: "tiff", width: 40, height: 70_000 });
  });

  it("gives up (null, left to the runner) on what it cannot read", () => {
    const png = bytesOf(FILES.png16!);
    expect(readImageSize(png.subarray(0, 20))).toBeNull(); // header cut short
    expect(readImageSize(bytesOf(FILES.jpeg!).subarray(0, 100))).toBeNull(); // SOF past the bytes given
    expect(readImageSize(bmp())).toBeNull();
    expect(readImageSize(new Uint8Array(64))).toBeNull();
    const zero = png.slice();
    zero.set([0, 0, 0, 0], 16); // width 0
    expect(readImageSize(zero)).toBeNull();
  });
});

describe("up-front geometry checks", () => {
  it("protect and verify refuse the 20000x50 poison image with 422 unsupported_aspect_ratio, storing nothing", async () => {
    const { tenantId, key } = await createTenantKey(["protect", "verify"]);
    const poison = await pngOf(20_000, 50);
    for (const path of ["/v1/protect", "/v1/verify"]) {
      const body = await expectProblem(await postImage(path, poison, { key }), 422, "unsupported_aspect_ratio");
      expect(body.detail).toContain("20000x50");
    }
    await nothingStoredFor(tenantId, key);
  });

  it("protect refuses a 1x1 image with 422 image_too_small before any asset or job exists (defect 7)", async () => {
    const { tenantId, key } = await createTenantKey(["protect", "verify"]);
    for (const path of ["/v1/protect", "/v1/verify"])
      expect((await expectProblem(await postImage(path, await pngOf(1, 1), { key }), 422, "image_too_small")).detail).toContain(
        "32 px",
      );
    await nothingStoredFor(tenantId, key);
  });

  it("a flow applies the strictest limits of its stages", async () => {
    expect(strictestGeometry(["face.analyze", "watermark.embed"])).toEqual({ min_side: 32, max_aspect_ratio: 16 });
    const { key } = await createTenantKey(["protect", "verify"]);
    // 16:1 passes every stage of both flows; 17:1 is past face.analyze's and the watermark's limit.
    expect((await postImage("/v1/verify", await pngOf(512, 32), { key })).status).toBe(202);
    await expectProblem(await postImage("/v1/protect", await pngOf(544, 32), { key }), 422, "unsupported_aspect_ratio");
  });

  it("job routes apply their operation's limits, for inline bodies and signed uploads", async () => {
    const { key } = await createTenantKey(["inspect", "restore"]);
    const inspect = OPERATIONS.inspect.limits.max_aspect_ratio;
    const lowlight = OPERATIONS["enhance.lowlight"].limits.max_aspect_ratio;
    await expectProblem(await postImage("/v1/inspect", await pngOf(20_000, 50), { key }), 422, "unsupported_aspect_ratio");
    expect((await postImage("/v1/inspect", await pngOf(inspect * 20, 20), { key })).status).toBe(202);
    expect((await postImage("/v1/enhance/lowlight", await pngOf(lowlight * 10, 10), { key })).status).toBe(202);
    await expectProblem(
      await postImage("/v1/enhance/lowlight", await pngOf(lowlight * 10 + 1, 10), { key }),
      422,
      "unsupported_aspect_ratio",
    );
    // The tall way round, and as JPEG, TIFF: the same check whatever the format.
    await expectProblem(
      await postImage("/v1/enhance/lowlight", tiffBigEndian(40, 70_000), { key }),
      422,
      "unsupported_aspect_ratio",
    );
    expect((await postImage("/v1/inspect", bytesOf(FILES.jpeg!), { key })).status).toBe(202);
    // A signed upload: the header is read from the stored object.
    const up = (await (await postJson("/v1/uploads", {}, { key })).json()) as { upload_id: string; upload_url: string };
    const url = new URL(up.upload_url);
    const put = await call(url.pathname + url.search, { key: null, method: "PUT", body: await pngOf(2100, 100) });
    expect(put.status).toBe(201);
    await expectProblem(
      await postJson("/v1/enhance/lowlight", { upload_id: up.upload_id }, { key }),
      422,
      "unsupported_aspect_ratio",
    );
    const ok = await postJson("/v1/inspect", { upload_id: up.upload_id }, { key });
    expect(ok.status).toBe(202);
    expect(((await ok.json()) as JobJson).operation).toBe("inspect");
  });
});

describe("BMP (defect 6)", () => {
  it("is refused up front with 415 unsupported_image on job routes and flows, storing nothing", async () => {
    const { tenantId, key } = await createTenantKey(["inspect", "restore", "protect", "verify"]);
    for (const path of ["/v1/inspect", "/v1/enhance/lowlight", "/v1/protect", "/v1/verify"]) {
      const body = await expectProblem(
        await postImage(path, bmp(), { key, headers: { "content-type": "image/bmp" } }),
        415,
        "unsupported_image",
      );
      expect(body.detail, path).toContain("BMP images are not supported");
    }
    await nothingStoredFor(tenantId, key);
  });

  it("the OpenAPI descriptions say so, with each route's geometry limits", async () => {
    const doc = (await (await call("/openapi.json", { key: null })).json()) as {
      paths: Record<string, { post?: { description?: string } }>;
    };
    for (const [path, min, ratio] of [
      ["/v1/inspect", 1, 100],
      ["/v1/enhance/lowlight", 1, 20],
      ["/v1/protect", 32, 16],
      ["/v1/verify", 32, 16],
    ] as const) {
      const d = doc.paths[path]!.post!.description!;
      expect(d, path).toContain("BMP included, is `415 unsupported_image`");
      expect(d, path).toContain(`at least ${min} px`);
      expect(d, path).toContain(`at most ${ratio} times`);
    }
  });
});
