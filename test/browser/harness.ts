import { existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page, type Request, type Response } from "playwright-core";
import { startTestStack } from "../e2e/harness.ts";

/**
 * Browser tests: the real local stack (wrangler dev + a CPU runner, as `npm start` runs it) and headless Chromium
 * driven by playwright-core. The stack is started once for the whole project by global-setup.ts; a test gets its
 * URL and keys with `inject("stack")`, launches a browser with `launchBrowser()` and opens pages with `openPage()`,
 * which records every request the page makes and every console error.
 */

/** What global-setup.ts hands each test file (vitest's `provide`/`inject`: JSON only). */
export interface StackInfo {
  url: string;
  devKey: string;
  operatorKey: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

/** Ports: the e2e files use 18747-18797 (their runners +100, inspectors +1000); this project's stack is alone here. */
export const BROWSER_STACK_PORT = 18727;

export async function startBrowserStack(): Promise<{ info: StackInfo; cleanup: () => Promise<void> }> {
  const { stack, cleanup } = await startTestStack({ port: BROWSER_STACK_PORT, runners: 1 });
  return {
    info: { url: stack.url, devKey: stack.vars.VIGIL_DEV_KEY!, operatorKey: stack.vars.VIGIL_OPERATOR_KEY! },
    cleanup,
  };
}

/** Debian's chromium (`apt-get install chromium`; .ci/run installs it). `npx playwright install` cannot work offline. */
export const CHROMIUM = process.env.VIGIL_CHROMIUM ?? "/usr/bin/chromium";

/**
 * Whether a browser is there to drive. In CI (`CI` set) a missing one is a failure, not a skip: CI installs it, so
 * its absence means the install broke.
 */
export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI) throw new Error(`${CHROMIUM} is missing; .ci/run installs Debian's chromium`);
  console.warn(`browser tests skipped: no ${CHROMIUM} (apt-get install -y chromium, or set VIGIL_CHROMIUM)`);
  return false;
}

/**
 * Headless Chromium with no traffic of its own: no background networking, component updates, sync or QUIC, so the
 * only requests are the pages'. playwright-core starts each launch on a fresh temporary profile (its own
 * --user-data-dir) and removes it on close. --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
 */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export interface RecordedRequest {
  url: string;
  method: string;
  resourceType: string;
  /** Whether it went to the page's own origin. */
  sameOrigin: boolean;
}

export interface OpenedPage {
  page: Page;
  context: BrowserContext;
  /** The answer to the navigation (status, headers). */
  response: Response | null;
  /** Every request the page (and any frame or worker of its context) made, in order, the document included. */
  requests: RecordedRequest[];
  /** Console messages of type "error", uncaught exceptions and failed requests, as text. */
  errors: string[];
  /** Requests that left the origin. They are recorded, then aborted, so nothing reaches another host. */
  offOrigin(): RecordedRequest[];
  /** A PNG at `path` (folders made as needed): the whole page, or with `fullPage: false` the viewport. */
  screenshot(path: string, opts?: { fullPage?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** The origin the page may talk to (default: the URL's); requests anywhere else are recorded and aborted. */
  origin?: string;
  viewport?: { width: number; height: number };
  /** sessionStorage entries for the page's origin, set before any of its scripts run (e.g. a signed-in console). */
  storage?: Record<string, string>;
  /** When `openPage` returns (default "networkidle": 500 ms with no request; a page that polls faster needs "load"). */
  waitUntil?: "load" | "domcontentloaded" | "networkidle";
}

/** Opens `url` in a new context of `browser`, recording from the first request on. */
export async function openPage(browser: Browser, url: string, opts: OpenOptions = {}): Promise<OpenedPage> {
  const origin = opts.origin ?? new URL(url).origin;
  const context = await browser.newContext({ viewport: opts.viewport ?? { width: 1280, height: 900 } });
  const requests: RecordedRequest[] = [];
  const errors: string[] = [];
  const record = (r: Request) => {
    const u = new URL(r.url());
    const sameOrigin = u.origin === origin || u.protocol === "data:" || u.protocol === "blob:";
    requests.push({ url: r.url(), method: r.method(), resourceType: r.resourceType(), sameOrigin });
  };
  context.on("request", record);
  context.on("requestfailed", (r) => {
    if (new URL(r.url()).origin === origin) errors.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
  });
  await context.route("**/*", (route) =>
    new URL(route.request().url()).origin === origin ? route.continue() : route.abort("blockedbyclient"),
  );
  if (opts.storage) {
    await context.addInitScript((entries: Record<string, string>) => {
      for (const [k, v] of Object.entries(entries)) sessionStorage.setItem(k, v);
    }, opts.storage);
  }
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
  const response = await page.goto(url, { waitUntil: opts.waitUntil ?? "networkidle" });
  return {
    page,
    context,
    response,
    requests,
    errors,
    offOrigin: () => requests.filter((r) => !r.sameOrigin),
    screenshot: async (path, shot) => {
      mkdirSync(dirname(path), { recursive: true });
      await page.screenshot({ path, fullPage: shot?.fullPage ?? true });
    },
    close: () => context.close(),
  };
}
