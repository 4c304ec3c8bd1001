import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { chromiumAvailable, launchBrowser, openPage, type OpenedPage } from "./harness.ts";

/**
 * /docs in headless Chromium, served by the local stack with no network: the reference must render from the
 * worker alone, list every operation of the served document, load nothing from another origin, and run under a
 * CSP the browser enforces.
 */
const stack = inject("stack");
const SCREENSHOT = process.env.VIGIL_SCREENSHOT_DIR
  ? join(process.env.VIGIL_SCREENSHOT_DIR, "docs.png")
  : join(tmpdir(), "vigil-browser", "docs.png");

interface Doc {
  paths: Record<string, Record<string, { operationId: string; summary?: string }>>;
}

describe.runIf(chromiumAvailable())("/docs in Chromium", () => {
  let browser: Browser;
  let opened: OpenedPage;
  let doc: Doc;

  beforeAll(async () => {
    doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as Doc;
    browser = await launchBrowser();
    opened = await openPage(browser, `${stack.url}/docs`);
  });
  afterAll(async () => {
    await opened?.close();
    await browser?.close();
  });

  it("answers with a strict Content-Security-Policy", async () => {
    expect(opened.response?.status()).toBe(200);
    const csp = (await opened.response!.allHeaders())["content-security-policy"];
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toMatch(/unsafe-|https?:|\*/);
  });

  it("lists every operation of the served document, with method, path and summary", async () => {
    const listed = await opened.page.$$eval("details.operation", (els) =>
      els.map((el) => ({
        id: el.id,
        method: el.querySelector("summary .method")?.textContent ?? "",
        path: el.querySelector("summary .path")?.textContent ?? "",
        summary: el.querySelector("summary .summary")?.textContent ?? "",
        visible: (el.querySelector("summary") as HTMLElement | null)?.offsetHeight ?? 0,
      })),
    );
    const expected = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => ({
        id: `op-${op.operationId}`,
        method: method.toUpperCase(),
        path,
        summary: op.summary ?? "",
      })),
    );
    expect(expected.length).toBeGreaterThan(20);
    expect(listed.map(({ visible: _, ...rest }) => rest).sort((a, b) => a.id.localeCompare(b.id))).toEqual(
      expected.sort((a, b) => a.id.localeCompare(b.id)),
    );
    for (const op of listed) expect(op.visible, op.id).toBeGreaterThan(0);
    // The table of contents links to each one.
    const nav = await opened.page.$$eval("nav a[href^='#op-']", (as) => as.map((a) => a.getAttribute("href")!.slice(1)));
    expect(nav.sort()).toEqual(expected.map((e) => e.id).sort());
  });

  it("opens an operation to its parameters and its declared errors", async () => {
    const op = opened.page.locator("#op-getJobsById");
    await op.locator("summary").click();
    await expect.poll(() => op.locator(".params").isVisible()).toBe(true);
    const statuses = await op.locator(".responses .status").allTextContents();
    expect(statuses).toEqual(expect.arrayContaining(["200", "401", "404", "500"]));
    expect(await op.locator(".params td code").first().textContent()).toBe("id");
  });

  it("is styled by its own stylesheet", async () => {
    // The stylesheet loaded under the CSP: the navigation column is sticky, which only it says.
    expect(await opened.page.locator("nav").evaluate((el) => getComputedStyle(el).position)).toBe("sticky");
  });

  it("made requests to its own origin only, each answered, with no console error", async () => {
    await opened.screenshot(SCREENSHOT);
    console.log(`docs screenshot: ${SCREENSHOT}`);
    expect(opened.requests.length).toBeGreaterThanOrEqual(2); // the page and its stylesheet, the icon if fetched
    expect(opened.requests.map((r) => r.resourceType)).toEqual(expect.arrayContaining(["document", "stylesheet"]));
    expect(opened.offOrigin()).toEqual([]);
    expect(opened.errors).toEqual([]);
  });

  it("the browser enforces the CSP: an injected inline script does not run", async () => {
    await expect(opened.page.addScriptTag({ content: "window.injected = true;" })).rejects.toThrow(
      /violates the following Content Security Policy directive/,
    );
    expect(await opened.page.evaluate(() => (window as unknown as { injected?: boolean }).injected)).toBeUndefined();
  });
});
