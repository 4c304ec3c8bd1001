import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { GENERATED, generatedModule } from "../../console/build.ts";
// The generated module only: routes.ts brings in the worker, whose types are workerd's, not Node's.
import { CONSOLE_CSS, CONSOLE_JS } from "../../worker/src/console/bundle.gen.ts";
import { WebhookReceiver } from "../e2e/harness.ts";
import { chromiumAvailable, launchBrowser, openPage, type OpenedPage } from "./harness.ts";

/**
 * The console at /console in headless Chromium against the real local stack (worker, queue, a CPU runner with the
 * real face and watermark models): sign in, register a webhook endpoint, protect a photo through the file picker,
 * verify the protected copy (dropped on the page) and a face-swapped copy, and read the verdicts, the job list and
 * the delivery log off the page. The swap is the identity e2e test's: another person's face from face-api's demo
 * photo, blended onto the protected image with models/identity/swap.py (Debian's OpenCV) on the landmarks the
 * service found. Runtime: 30-52 s for this file on the 2-core dev machine (five jobs on the CPU runner: protect,
 * derain and three verifies, one of them the test's own for the swap's landmarks), after the shared stack start (16 s).
 */
const stack = inject("stack");
const root = new URL("../../", import.meta.url).pathname;
const PHOTO = join(root, "test/fixtures/photo.jpg");
// The same swap source as test/e2e/identity.test.ts (sample3.jpg's woman, 17 bits from the astronaut's code).
const SAMPLE = join(root, "node_modules/@vladmandic/face-api/demo/sample3.jpg");
const SAMPLE_CROP = { left: 406, top: 140, width: 558, height: 650 };
const PYTHON = "/usr/bin/python3";
const HAS_OPENCV = spawnSync(PYTHON, ["-c", "import cv2, numpy"]).status === 0;
if (!HAS_OPENCV && !process.env.CI)
  console.warn("console test: the face swap needs Debian's python3-opencv; its case is skipped");
const SCREENSHOT = process.env.VIGIL_SCREENSHOT_DIR
  ? join(process.env.VIGIL_SCREENSHOT_DIR, "console.png")
  : join(tmpdir(), "vigil-browser", "console.png");
const KEY_ITEM = "vigil.console.key";

/** A call to the API from the test itself (fixtures the page cannot make: the swap's landmarks). */
async function call(path: string, init: RequestInit = {}): Promise<any> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${stack.devKey}`);
  const res = await fetch(stack.url + path, { ...init, headers });
  const text = await res.text();
  expect(res.status, `${path}: ${text.slice(0, 500)}`).toBeLessThan(300);
  return JSON.parse(text);
}

/** The landmarks of the face a verify or protect job's face.analyze stage found. */
async function landmarksOf(job: any): Promise<[number, number][]> {
  const stage = job.stages.find((s: { name: string }) => s.name === "face.analyze");
  const analyzed = await call(`/v1/jobs/${stage.id}`);
  expect(analyzed.output.faces.length).toBeGreaterThan(0);
  return analyzed.output.faces[0].landmarks;
}

/** Drops `bytes` on the page's drop zone as a file, the way a drag from the desktop does. */
async function dropFile(page: Page, bytes: Buffer, name: string, type: string) {
  const transfer = await page.evaluateHandle(
    ({ b64, name, type }) => {
      const data = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([data], name, { type }));
      return dt;
    },
    { b64: bytes.toString("base64"), name, type },
  );
  await page.dispatchEvent("#drop", "dragover", { dataTransfer: transfer });
  await page.dispatchEvent("#drop", "drop", { dataTransfer: transfer });
}

/** Runs `operation` (its label in the form: the path under /v1) on the chosen file and waits for its job to end on the page; returns the job id. */
async function runOperation(page: Page, operation: string, timeout = 90_000): Promise<string> {
  const select = page.locator("#operation");
  // Choosing the operation again would redraw its param fields (and lose what was typed in them).
  if ((await select.locator("option:checked").textContent()) !== operation) await select.selectOption({ label: operation });
  const article = page.locator("#result article.job");
  const before = (await article.count()) ? await article.getAttribute("data-job") : null;
  await page.click("#run");
  // The new job's article: the previous one stays until the upload starts.
  const state = async () => {
    if (!(await article.count())) return "";
    const id = await article.getAttribute("data-job");
    return id === before ? "" : `${id} ${await article.getAttribute("data-status")}`;
  };
  await expect.poll(state, { timeout, interval: 200 }).toMatch(/^job_\w+ (succeeded|failed|canceled)$/);
  const id = (await article.getAttribute("data-job"))!;
  expect(id).not.toBe(before);
  expect(await article.getAttribute("data-status"), (await article.textContent()) ?? "").toBe("succeeded");
  expect(await article.locator("h2").textContent()).toBe(operation.replace("/", "."));
  return id;
}

const field = (page: Page, name: string) => page.locator(`#result .evidence tr[data-field="${name}"]`);
const fieldValue = async (page: Page, name: string) => JSON.parse((await field(page, name).getAttribute("data-value"))!);

describe("the bundle", () => {
  it("worker/src/console/bundle.gen.ts is what console/build.ts makes of console/ now (npm run build:console)", async () => {
    expect(readFileSync(GENERATED, "utf8") === (await generatedModule()), "stale bundle: run npm run build:console").toBe(true);
  });
});

describe.runIf(chromiumAvailable())("/console in Chromium, against the local stack", () => {
  let browser: Browser;
  let opened: OpenedPage;
  let page: Page;
  const receiver = new WebhookReceiver();
  const dir = mkdtempSync(join(tmpdir(), "vigil-console-"));
  let protectJob: any;
  let protectedImage: Buffer;
  let authenticJob: any;

  beforeAll(async () => {
    browser = await launchBrowser();
    opened = await openPage(browser, `${stack.url}/console`, { waitUntil: "load" });
    page = opened.page;
  });
  afterAll(async () => {
    receiver.close();
    await opened?.close();
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("is served under a strict CSP that allows its own origin only, with a small script and stylesheet", async () => {
    expect(opened.response?.status()).toBe(200);
    const csp = (await opened.response!.allHeaders())["content-security-policy"]!;
    for (const d of [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "connect-src 'self'",
      "frame-ancestors 'none'",
    ])
      expect(csp).toContain(d);
    expect(csp).toContain("require-trusted-types-for 'script'");
    expect(csp).not.toMatch(/unsafe-|https?:|\*/);
    const sizes: Record<string, number> = {};
    const assets = {
      script: `/console/${CONSOLE_JS.name}`,
      stylesheet: `/console/${CONSOLE_CSS.name}`,
      icon: "/console/icon.svg",
    };
    for (const [name, path] of Object.entries(assets)) {
      const res = await fetch(stack.url + path);
      expect(res.status, path).toBe(200);
      sizes[name] = (await res.arrayBuffer()).byteLength;
    }
    console.log(`console assets (bytes): ${JSON.stringify(sizes)}`);
    expect(sizes.script! + sizes.stylesheet!).toBeLessThan(40_000);
    // An asset name that is not the current build's is a 404 problem, not the page.
    const stale = await fetch(`${stack.url}/console/console.0000000000.js`);
    expect([stale.status, stale.headers.get("content-type")]).toEqual([404, "application/problem+json"]);
    expect(((await stale.json()) as { type: string }).type).toBe("https://vigil.dev/errors/not_found");
  });

  it("shows the API's problem for a wrong key and for a file that is not an image, on a page of its own", async () => {
    const other = await openPage(browser, `${stack.url}/console`, { waitUntil: "load" });
    try {
      await other.page.fill("#api-key", "vgl_not_a_key");
      await other.page.click("#sign-in button[type=submit]");
      const problem = other.page.locator("#sign-in .problem");
      await expect.poll(() => problem.getAttribute("data-code")).toBe("invalid_api_key");
      expect(await other.page.evaluate((k) => sessionStorage.getItem(k), KEY_ITEM)).toBeNull();

      await other.page.fill("#api-key", stack.devKey);
      await other.page.click("#sign-in button[type=submit]");
      await other.page.waitForSelector("#run-form");
      await other.page.setInputFiles("#file", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not a photo") });
      await other.page.selectOption("#operation", { label: "inspect" });
      await other.page.click("#run");
      const refused = other.page.locator("#result .problem");
      await expect.poll(() => refused.getAttribute("data-code")).toBe("unsupported_media_type");
      expect(await refused.textContent()).toMatch(/^415 unsupported_media_type: /);
      // Chromium logs the two refusals itself; nothing else went wrong.
      expect(other.errors.filter((e) => !/status of (401|415)/.test(e))).toEqual([]);
      expect(other.offOrigin()).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it("with a key lacking the admin scope, the webhooks view shows the API's 403 problem", async () => {
    const minted = await call("/v1/api_keys", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "console inspect-only", scopes: ["inspect"] }),
    });
    const other = await openPage(browser, `${stack.url}/console`, { waitUntil: "load" });
    try {
      await other.page.fill("#api-key", minted.key);
      await other.page.click("#sign-in button[type=submit]");
      await other.page.waitForSelector("#run-form");
      await other.page.click("button.tab[data-view=webhooks]");
      const refused = other.page.locator("#webhooks-status .problem");
      await expect.poll(() => refused.getAttribute("data-code")).toBe("insufficient_scope");
      expect(await refused.textContent()).toContain("admin");
      expect(other.errors.filter((e) => !/status of 403/.test(e))).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it("signs in with the key and keeps it in sessionStorage only", async () => {
    await page.fill("#api-key", stack.devKey);
    await page.click("#sign-in button[type=submit]");
    await page.waitForSelector("#run-form");
    expect(await page.evaluate((k) => sessionStorage.getItem(k), KEY_ITEM)).toBe(stack.devKey);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    // The run form lists every image operation of the served document.
    const doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as { paths: Record<string, any> };
    const expected = Object.entries(doc.paths)
      .filter(([, item]) => Object.keys(item.post?.requestBody?.content ?? {}).some((t) => t.startsWith("image/")))
      .map(([path]) => path.replace("/v1/", ""));
    expect(expected).toEqual(expect.arrayContaining(["protect", "verify", "inspect", "enhance/lowlight", "enhance/derain"]));
    expect((await page.locator("#operation option").allTextContents()).sort()).toEqual(expected.sort());
    // Each operation's params are fields typed from their schemas.
    await page.selectOption("#operation", { label: "enhance/derain" });
    expect(await page.locator("#param-method option").allTextContents()).toEqual(["streak-vapor", "heavy-two-branch"]);
    expect(await page.locator("#param-maps").getAttribute("type")).toBe("checkbox");
    expect(await page.locator("#param-dehaze").getAttribute("type")).toBe("number");
  });

  it("registers a webhook endpoint and shows its secret once", async () => {
    const url = await receiver.listen();
    await page.click("button.tab[data-view=webhooks]");
    await page.fill("#webhook-url", url);
    await page.fill("#webhook-events", "verification.face_swap_detected");
    await page.click("#webhook-form button[type=submit]");
    const secret = (await page.locator("#webhook-secret .secret").textContent({ timeout: 10_000 }))!;
    expect(secret).toMatch(/^whsec_/);
    receiver.setSecret(secret);
    await expect.poll(() => page.locator("#view-webhooks tr[data-endpoint]").count()).toBe(1);
    await page.click("button.tab[data-view=run]");
  });

  it("protects a photo picked with the file picker, with the watermarked image behind a before/after slider", async () => {
    await page.setInputFiles("#file", PHOTO);
    await page.selectOption("#operation", { label: "protect" });
    await page.fill("#param-owner", "console-e2e");
    // Every status the job list and the result panel show, in order, as the page draws them.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      const record = () =>
        document.querySelectorAll("#jobs tr[data-job], #result article.job").forEach((el) => {
          const v = `${el.closest("#jobs") ? "list" : "result"} ${el.getAttribute("data-job")} ${el.getAttribute("data-status")}`;
          if (seen.at(-1) !== v && !seen.includes(v)) seen.push(v);
        });
      new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    const id = await runOperation(page, "protect");
    protectJob = await call(`/v1/jobs/${id}`);
    // Live status: both showed the job unfinished before they showed it succeeded.
    const seen = (await page.evaluate(() => (window as unknown as { seen: string[] }).seen)).filter((v) => v.includes(id));
    for (const where of ["list", "result"]) {
      const statuses = seen.filter((v) => v.startsWith(`${where} `)).map((v) => v.split(" ")[2]);
      expect(statuses.at(-1), `${where}: ${statuses}`).toBe("succeeded");
      expect(statuses.slice(0, -1), `${where}: ${statuses}`).toEqual(
        expect.arrayContaining([expect.stringMatching(/queued|running/)]),
      );
    }
    expect(protectJob.operation).toBe("protect");
    expect(protectJob.params.owner).toBe("console-e2e");
    expect(await page.locator('#result tr[data-field="asset_id"] td').textContent()).toBe(protectJob.output.asset_id);
    // Both images of the slider loaded (the original from the picked file, the result from its signed URL) ...
    const compare = page.locator("#result figure.compare");
    await expect
      .poll(() => compare.locator("img").evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth)))
      .toEqual([512, 512]);
    expect(await compare.locator("img.before").getAttribute("src")).toMatch(/^blob:/);
    // ... and the slider moves the edge between them.
    await compare.locator("input[type=range]").fill("20");
    expect(await compare.locator("img.after").evaluate((el) => getComputedStyle(el).clipPath)).toBe("inset(0px 0px 0px 20%)");
    protectedImage = Buffer.from(await (await fetch(protectJob.output.image_url)).arrayBuffer());
  });

  it("restores a rainy photo (enhance/derain with maps): the result behind the slider, the maps beside it", async () => {
    await page.selectOption("#operation", { label: "enhance/derain" });
    await page.check("#param-maps");
    await page.setInputFiles("#file", join(root, "test/fixtures/rainy-garden.jpg"));
    const id = await runOperation(page, "enhance/derain");
    const job = await call(`/v1/jobs/${id}`);
    expect(job.params.maps).toBe(true);
    const compare = page.locator("#result figure.compare");
    await expect
      .poll(() => compare.locator("img").evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth)))
      .toEqual([1024, 1024]);
    // The job's image (each read mints a fresh signature, so the path is what compares).
    const path = (url: string | null) => new URL(url!).pathname;
    expect(path(await compare.locator("img.after").getAttribute("src"))).toBe(path(job.output.image_url));
    const maps = page.locator("#result figure.artifact");
    expect(await maps.locator("figcaption").allTextContents()).toEqual(["transmission", "rain"]);
    await expect
      .poll(() => maps.locator("img").evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth)))
      .toEqual([1024, 1024]);
  });

  it("verifies the protected copy dropped on the page: authentic, traced to its asset", async () => {
    await dropFile(page, protectedImage, "protected.png", "image/png");
    expect(await page.locator("#drop .file-name").textContent()).toContain("protected.png");
    const id = await runOperation(page, "verify");
    authenticJob = await call(`/v1/jobs/${id}`);
    expect(await page.locator("#result [data-verdict]").getAttribute("data-verdict")).toBe("authentic");
    expect(await page.locator("#result [data-asset]").getAttribute("data-asset")).toBe(protectJob.output.asset_id);
  });

  it.skipIf(!HAS_OPENCV && !process.env.CI)(
    "verifies a face-swapped copy: the face_swapped verdict with its evidence and the traced source",
    async () => {
      const otherPerson = await sharp(SAMPLE).extract(SAMPLE_CROP).jpeg({ quality: 90 }).toBuffer();
      const seen = await call("/v1/verify", {
        method: "POST",
        headers: { "content-type": "image/jpeg", prefer: "wait=60" },
        body: new Uint8Array(otherPerson),
      });
      const paths = { target: join(dir, "target.png"), source: join(dir, "source.jpg"), out: join(dir, "swapped.png") };
      writeFileSync(paths.target, protectedImage);
      writeFileSync(paths.source, otherPerson);
      const jobs = [
        {
          ...paths,
          target_landmarks: await landmarksOf(authenticJob),
          source_landmarks: await landmarksOf(seen),
          blend: "seamless",
        },
      ];
      writeFileSync(join(dir, "jobs.json"), JSON.stringify(jobs));
      const py = spawnSync(PYTHON, [join(root, "models/identity/swap.py"), join(dir, "jobs.json")], { encoding: "utf8" });
      expect(py.status, py.stderr).toBe(0);

      await page.setInputFiles("#file", paths.out);
      const id = await runOperation(page, "verify");
      const job = await call(`/v1/jobs/${id}`);
      const ev = job.output.evidence;
      expect(job.output.verdict, `${job.output.reason} ${JSON.stringify(ev)}`).toBe("face_swapped");

      const verdict = page.locator("#result [data-verdict]");
      expect(await verdict.getAttribute("data-verdict")).toBe("face_swapped");
      expect(await verdict.locator(".verdict-label").textContent()).toBe("Face swapped");
      expect(await verdict.locator(".reason").textContent()).toBe(job.output.reason);
      // The evidence on the page is the response's.
      expect(await fieldValue(page, "p_value")).toBe(ev.p_value);
      expect(await field(page, "p_value").locator("td").textContent()).toContain(ev.p_value.toExponential(2));
      expect(await fieldValue(page, "identity_distance")).toBe(ev.identity_distance);
      expect(await fieldValue(page, "threshold")).toBe(ev.threshold);
      expect(ev.identity_distance).toBeGreaterThan(ev.threshold);
      expect(await field(page, "identity_distance").locator("td").textContent()).toContain(
        `${ev.identity_distance.toFixed(3)} > threshold ${ev.threshold.toFixed(3)}`,
      );
      expect(await fieldValue(page, "false_alarm_rate")).toEqual(ev.false_alarm_rate);
      expect(await fieldValue(page, "miss_rate")).toEqual(ev.miss_rate);
      expect(await field(page, "miss_rate").locator("td").textContent()).toMatch(/95 % interval \d/);
      expect(await fieldValue(page, "swapped_faces")).toEqual(ev.swapped_faces);
      expect(await page.locator("#result [data-asset]").getAttribute("data-asset")).toBe(protectJob.output.asset_id);
      expect(await page.locator('#result .source tr[data-field="owner"] td').textContent()).toBe("console-e2e");
      await opened.screenshot(SCREENSHOT);
      console.log(`console screenshot: ${SCREENSHOT}`);

      // The alert reached the endpoint, and its delivery log shows it.
      await receiver.waitFor((e) => e.type === "verification.face_swap_detected", 30_000);
      await page.click("button.tab[data-view=webhooks]");
      await page.click("#view-webhooks [data-action=deliveries]");
      const delivery = page.locator('#deliveries tr[data-event-type="verification.face_swap_detected"]');
      await expect
        .poll(
          async () => {
            if ((await delivery.count()) === 0) await page.locator("#deliveries button.link").click();
            return delivery
              .first()
              .getAttribute("data-status", { timeout: 1000 })
              .catch(() => null);
          },
          { timeout: 15_000, interval: 500 },
        )
        .toBe("succeeded");
      expect(await delivery.first().locator("li[data-status-code]").first().getAttribute("data-status-code")).toBe("204");
      await page.click("button.tab[data-view=run]");
    },
  );

  it("lists the jobs with their status, polling, and shows the stages on request", async () => {
    const rows = page.locator("#jobs tbody tr[data-job]");
    await expect
      .poll(() => page.locator(`#jobs tr[data-job="${authenticJob.id}"]`).getAttribute("data-status"))
      .toBe("succeeded");
    expect(await page.locator(`#jobs tr[data-job="${protectJob.id}"] .status`).textContent()).toBe("succeeded");
    // Stages are hidden until asked for, as in GET /v1/jobs.
    expect(await page.locator(`#jobs tr[data-job="${protectJob.stages[0].id}"]`).count()).toBe(0);
    await page.check("#include-children");
    await expect.poll(() => page.locator(`#jobs tr[data-job="${protectJob.stages[0].id}"]`).count()).toBe(1);
    await page.uncheck("#include-children");
    // Opening a job from the list shows it.
    await page.locator(`#jobs tr[data-job="${protectJob.id}"]`).click();
    await expect.poll(() => page.locator("#result article.job").getAttribute("data-job")).toBe(protectJob.id);
    expect(await rows.count()).toBeGreaterThanOrEqual(3);
    const polls = opened.requests.filter((r) => new URL(r.url).pathname === "/v1/jobs" && r.method === "GET");
    expect(polls.length).toBeGreaterThan(3);
  });

  it("made requests to its own origin only, with no console error, and its CSP holds in the browser", async () => {
    expect(opened.offOrigin()).toEqual([]);
    expect(opened.errors).toEqual([]);
    // An injected inline script does not run: Trusted Types refuse its text before script-src would.
    await expect(page.addScriptTag({ content: "window.injected = true;" })).rejects.toThrow(/requires 'TrustedScript'/);
    expect(await page.evaluate(() => (window as unknown as { injected?: boolean }).injected)).toBeUndefined();
    // Trusted Types: markup from a string is refused.
    expect(
      await page.evaluate(() => {
        try {
          document.body.insertAdjacentHTML("beforeend", "<b>x</b>");
          return "inserted";
        } catch (e) {
          return (e as Error).name;
        }
      }),
    ).toBe("TypeError");
    // fetch to another origin is refused by connect-src before it leaves.
    expect(
      await page.evaluate(() =>
        fetch("http://127.0.0.2:9/").then(
          () => "sent",
          (e) => String(e),
        ),
      ),
    ).toMatch(/TypeError/);
    expect(opened.requests.some((r) => r.url.startsWith("http://127.0.0.2"))).toBe(false);
  });

  it("signs out: the key leaves sessionStorage and the sign-in form is back", async () => {
    await page.click("#sign-out");
    await page.waitForSelector("#sign-in");
    expect(await page.evaluate((k) => sessionStorage.getItem(k), KEY_ITEM)).toBeNull();
    await page.reload({ waitUntil: "load" });
    await page.waitForSelector("#sign-in");
  });
});
