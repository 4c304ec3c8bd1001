import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Webhook } from "standardwebhooks";
import { defineConfig } from "vitest/config";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");

/**
 * Fixed test secrets. The Ed25519 pair was generated once with contract/ticket.ts generateTicketKeyPair();
 * it signs nothing outside this suite.
 */
export const TEST_VARS = {
  VIGIL_MODE: "production",
  VIGIL_REQUEST_LOG: "off",
  VIGIL_DEV_KEY: "vgl_dev_test_key_0123456789abcdef",
  VIGIL_OPERATOR_KEY: "vop_operator_test_key_0123456789abcdef",
  TICKET_SIGNING_KEY: "MC4CAQAwBQYDK2VwBCIEIErRwq50iIYnx8d4llmeo8-2B6A5mAlSmOVLfItVkZOA",
  TICKET_PUBLIC_KEY: "ypRq4DZy2ATa503_4HgtL9xKxRIBR5-fbGchEUQVnsY",
  TICKET_SIGNING_KID: "test-2026",
  RUNNER_SECRETS: "runner-a:secret-a-0123456789,runner-b:secret-b-0123456789",
  OBJECT_URL_SECRET: "object-url-secret-for-tests",
  MASTER_KEY_ENCRYPTION_KEY: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
};

/**
 * Outbound fetches from the worker (webhook deliveries) land here, in Node: a stand-in receiver at
 * hooks.example.com that verifies the Standard Webhooks signature with the reference `standardwebhooks`
 * package. The secret travels in the URL's query so the receiver needs no shared state.
 */
async function webhookReceiver(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (url.hostname !== "hooks.example.com") return new Response("no network in tests", { status: 502 });
  if (url.pathname === "/fail") return new Response("down", { status: 500 });
  // A redirect must not be followed: the target was never checked against the SSRF rules.
  if (url.pathname === "/redirect") return new Response(null, { status: 307, headers: { location: "http://127.0.0.1/" } });
  const secret = url.searchParams.get("secret") ?? "";
  const body = await request.text();
  try {
    new Webhook(secret).verify(body, Object.fromEntries(request.headers));
    return new Response("ok", { status: 200 });
  } catch (e) {
    return new Response(String(e), { status: 401 });
  }
}

export default defineConfig(async () => ({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: join(root, "wrangler.toml") },
      miniflare: {
        bindings: { ...TEST_VARS, TEST_MIGRATIONS: await readD1Migrations(join(root, "worker", "migrations")) },
        outboundService: webhookReceiver,
      },
    }),
  ],
  test: {
    name: "worker",
    include: [join(here, "**/*.test.ts")],
    setupFiles: [join(here, "setup.ts")],
    testTimeout: 30_000,
  },
}));
