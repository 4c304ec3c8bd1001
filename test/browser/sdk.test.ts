import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { build } from "esbuild";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { chromiumAvailable, launchBrowser, openPage, type OpenedPage } from "./harness.ts";

/**
 * The SDK running in a real browser (not only bundled for one): its esbuild browser bundle loaded into a page of
 * the stack's own origin, then used from the page against the real API, as a web app would.
 */
const stack = inject("stack");

describe.runIf(chromiumAvailable())("the SDK in Chromium", () => {
  let browser: Browser;
  let opened: OpenedPage;

  beforeAll(async () => {
    const out = await build({
      entryPoints: [resolve("sdk/src/index.ts")],
      bundle: true,
      platform: "browser",
      format: "iife",
      globalName: "VigilSDK",
      write: false,
      logLevel: "silent",
    });
    browser = await launchBrowser();
    // Any page of the stack's origin without a CSP of its own will do as a host: the document is one.
    opened = await openPage(browser, `${stack.url}/openapi.json`, { waitUntil: "load" });
    await opened.page.addScriptTag({ content: out.outputFiles[0]!.text });
  });
  afterAll(async () => {
    await opened?.close();
    await browser?.close();
  });

  it("runs an operation with Prefer: wait and gets a typed problem+json error, with no Node API in the page", async () => {
    const photo = readFileSync(resolve("test/fixtures/photo.jpg")).toString("base64");
    const result = await opened.page.evaluate(
      async ({ key, photo }) => {
        const sdk = (globalThis as any).VigilSDK;
        const vigil = new sdk.Vigil({ baseUrl: location.origin, apiKey: key });
        const bytes = Uint8Array.from(atob(photo), (c) => c.charCodeAt(0));
        const job = await vigil.inspect(bytes);
        const missing = await vigil.jobs.get("job_missing").catch((e: unknown) => e);
        return {
          hasProcess: typeof (globalThis as any).process !== "undefined",
          job: { id: job.id, status: job.status, width: job.output?.width },
          missing: missing instanceof sdk.VigilError ? { code: missing.code, status: missing.status } : String(missing),
        };
      },
      { key: stack.devKey, photo },
    );
    expect(result.hasProcess).toBe(false);
    expect(result.job.id).toMatch(/^job_/);
    expect(result.job.status).toBe("succeeded");
    expect(result.job.width).toBeGreaterThan(0);
    expect(result.missing).toEqual({ code: expect.stringMatching(/not_found/), status: 404 });
    expect(opened.offOrigin()).toEqual([]);
    // The 404 the test asks for is logged by the browser as a failed resource load; nothing else may be.
    expect(opened.errors.filter((e) => !/status of 404/.test(e))).toEqual([]);
  });
});
