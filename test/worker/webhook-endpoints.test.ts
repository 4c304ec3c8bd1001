import { describe, expect, it } from "vitest";
import { checkWebhookUrl } from "../../worker/src/lib/ssrf.ts";
import { call, createTenantKey, expectProblem, postJson } from "./helpers.ts";

/**
 * Webhook endpoint creation refuses internal targets, and says why. The SSRF cases used to check only that a URL was
 * refused (issue 12's weak spots), which also passes when a URL is refused for the wrong reason: "must use https"
 * would hide a broken private-address check behind every http:// case. Each case here pins the reason
 * (worker/src/lib/ssrf.ts) in the guard itself and in the API's answer, and that nothing was stored.
 */

const PRIVATE = (host: string) => `address ${host} is private, loopback or link-local`;
const NOT_PUBLIC = (host: string) => `host ${host} is not a public address`;

const refused: [url: string, reason: string][] = [
  ["http://example.com/hook", "webhook URLs must use https"],
  ["ftp://example.com/hook", "webhook URLs must use https"],
  ["https://user:pass@example.com/hook", "credentials in webhook URLs are not allowed"],
  ["https://user@example.com/hook", "credentials in webhook URLs are not allowed"],
  ["https://localhost/hook", NOT_PUBLIC("localhost")],
  ["https://localhost./hook", NOT_PUBLIC("localhost")], // a trailing dot names the same host
  ["https://LOCALHOST/hook", NOT_PUBLIC("localhost")],
  ["https://api.localhost/hook", NOT_PUBLIC("api.localhost")],
  ["https://printer.local/hook", NOT_PUBLIC("printer.local")],
  ["https://metadata.google.internal/computeMetadata/v1/", NOT_PUBLIC("metadata.google.internal")],
  ["https://metadata/latest", NOT_PUBLIC("metadata")],
  ["https://router.home.arpa/hook", NOT_PUBLIC("router.home.arpa")],
  ["https://intranet/hook", "host intranet is not a public name"],
  ["https://127.0.0.1/hook", PRIVATE("127.0.0.1")],
  // The URL parser normalises the other spellings of 127.0.0.1 first, and the reason names what it resolved to.
  ["https://2130706433/hook", PRIVATE("127.0.0.1")],
  ["https://0x7f000001/hook", PRIVATE("127.0.0.1")],
  ["https://0177.0.0.1/hook", PRIVATE("127.0.0.1")],
  ["https://127.1/hook", PRIVATE("127.0.0.1")],
  ["https://10.1.2.3/hook", PRIVATE("10.1.2.3")],
  ["https://172.16.0.1/hook", PRIVATE("172.16.0.1")],
  ["https://192.168.1.1/hook", PRIVATE("192.168.1.1")],
  ["https://169.254.169.254/latest/meta-data", PRIVATE("169.254.169.254")],
  ["https://100.64.0.1/hook", PRIVATE("100.64.0.1")],
  ["https://0.0.0.0/hook", PRIVATE("0.0.0.0")],
  ["https://224.0.0.1/hook", PRIVATE("224.0.0.1")],
  ["https://[::1]/hook", PRIVATE("[::1]")],
  ["https://[::]/hook", PRIVATE("[::]")],
  ["https://[fe80::1]/hook", PRIVATE("[fe80::1]")],
  ["https://[fc00::1]/hook", PRIVATE("[fc00::1]")],
  ["https://[fd00:ec2::254]/hook", PRIVATE("[fd00:ec2::254]")],
  ["https://[::ffff:127.0.0.1]/hook", PRIVATE("[::ffff:7f00:1]")],
  ["https://[::ffff:10.0.0.1]/hook", PRIVATE("[::ffff:a00:1]")],
  ["https://[64:ff9b::a9fe:a9fe]/hook", PRIVATE("[64:ff9b::a9fe:a9fe]")],
];

describe("webhook endpoint URLs: refused with the reason", () => {
  it.each(refused)("the guard refuses %s: %s", (url, reason) => {
    expect(checkWebhookUrl(url, "production")).toEqual({ ok: false, reason });
  });

  it("the API answers 422 webhook_url_not_allowed with the same reason, on the url field, and stores nothing", async () => {
    const { key } = await createTenantKey(["admin"]);
    const failures: string[] = [];
    for (const [url, reason] of refused) {
      const res = await postJson("/v1/webhook_endpoints", { url, events: ["job.succeeded"] }, { key });
      const body = await expectProblem(res, 422, "webhook_url_not_allowed");
      const want = { detail: `webhook URL rejected: ${reason}`, errors: [{ path: "url", message: reason }] };
      if (JSON.stringify({ detail: body.detail, errors: body.errors }) !== JSON.stringify(want))
        failures.push(`${url}: ${body.detail} ${JSON.stringify(body.errors)}`);
    }
    expect(failures).toEqual([]);
    const list = (await (await call("/v1/webhook_endpoints", { key })).json()) as { data: unknown[] };
    expect(list.data).toEqual([]);
  });

  it("a string that is not a URL is a validation error on the url field before the guard runs", async () => {
    const { key } = await createTenantKey(["admin"]);
    const res = await postJson("/v1/webhook_endpoints", { url: "not a url", events: ["*"] }, { key });
    const body = await expectProblem(res, 422, "validation_failed");
    expect(body.errors?.map((e) => e.path)).toEqual(["url"]);
    expect(checkWebhookUrl("not a url", "production")).toEqual({ ok: false, reason: "not a valid absolute URL" });
  });

  it("public https targets are accepted, stored normalised; http and loopback only in local mode", async () => {
    const { key } = await createTenantKey(["admin"]);
    const res = await postJson(
      "/v1/webhook_endpoints",
      { url: "https://HOOKS.example.com/a", events: ["job.succeeded"] },
      { key },
    );
    expect(res.status).toBe(201);
    expect(((await res.json()) as { url: string }).url).toBe("https://hooks.example.com/a");
    for (const url of ["https://8.8.8.8/x", "https://[2606:4700::1111]/x", "https://hooks.example.com./x"]) {
      expect(checkWebhookUrl(url, "production").ok, url).toBe(true);
    }
    expect(checkWebhookUrl("http://127.0.0.1:9000/x", "local").ok).toBe(true);
    expect(checkWebhookUrl("http://localhost:9000/x", "local").ok).toBe(true);
    // Local mode still refuses credentials and other schemes.
    expect(checkWebhookUrl("http://u:p@127.0.0.1/x", "local")).toEqual({
      ok: false,
      reason: "credentials in webhook URLs are not allowed",
    });
    expect(checkWebhookUrl("ftp://127.0.0.1/x", "local")).toEqual({ ok: false, reason: "webhook URLs must use https" });
  });
});
