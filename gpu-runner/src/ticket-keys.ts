import { KeyObject, verify as verifySignature } from "node:crypto";
import type { TicketPayload } from "../../contract/protocol.ts";
import { RUNNER_ROUTES } from "../../contract/protocol.ts";
import { importTicketPublicKey, TicketError, verifyTicketWith } from "../../contract/ticket.ts";
import type { WorkerClient } from "./worker-client.ts";

/**
 * The worker's ticket public keys by kid. Configured keys are fixed; otherwise they are fetched from the
 * worker (signed request) and refetched when a ticket names a kid we have not seen (key rotation), at most
 * once per `minRefreshMs` so a flood of forged kids cannot make us hammer the worker.
 */
export class TicketKeyring {
  private keys = new Map<string, KeyObject>();
  private lastFetch = 0;

  constructor(
    private readonly source: { fixed: Map<string, string> } | { client: WorkerClient },
    private readonly minRefreshMs = 10_000,
  ) {}

  async init(): Promise<void> {
    if ("fixed" in this.source) this.keys = await importAll(this.source.fixed);
    else await this.refresh();
  }

  get size(): number {
    return this.keys.size;
  }

  private async refresh(): Promise<void> {
    if (!("client" in this.source)) return;
    this.lastFetch = Date.now();
    const body = await this.source.client.call<unknown>("GET", RUNNER_ROUTES.ticketKeys);
    this.keys = await importAll(parseKeysResponse(body));
  }

  async verify(token: string, nowSeconds?: number): Promise<TicketPayload> {
    try {
      return await verifyTicketWith(token, this.keys, checkEd25519, nowSeconds);
    } catch (e) {
      const canRefresh = "client" in this.source && Date.now() - this.lastFetch >= this.minRefreshMs;
      if (!(e instanceof TicketError) || e.code !== "unknown_key" || !canRefresh) throw e;
      await this.refresh();
      return verifyTicketWith(token, this.keys, checkEd25519, nowSeconds);
    }
  }
}

/** Synchronous node:crypto check; see verifyTicketWith for why not WebCrypto here. */
function checkEd25519(key: KeyObject, sig: Uint8Array, body: Uint8Array): boolean {
  try {
    return verifySignature(null, body, key, sig);
  } catch {
    return false; // e.g. a signature of the wrong length: WebCrypto answers false there too
  }
}

async function importAll(raw: Map<string, string>): Promise<Map<string, KeyObject>> {
  const out = new Map<string, KeyObject>();
  for (const [kid, key] of raw) out.set(kid, KeyObject.from(await importTicketPublicKey(key)));
  return out;
}

/** Accepts `{keys:[{kid, public_key|key|x}]}` or a plain `{kid: key}` object. */
export function parseKeysResponse(body: unknown): Map<string, string> {
  const out = new Map<string, string>();
  const list = (body as { keys?: unknown })?.keys;
  if (Array.isArray(list)) {
    for (const k of list as Record<string, unknown>[]) {
      const key = k.public_key ?? k.key ?? k.x;
      if (typeof k.kid === "string" && typeof key === "string") out.set(k.kid, key);
    }
  } else if (body && typeof body === "object") {
    for (const [kid, key] of Object.entries(body)) if (typeof key === "string") out.set(kid, key);
  }
  if (out.size === 0) throw new Error("the worker returned no ticket public keys");
  return out;
}
