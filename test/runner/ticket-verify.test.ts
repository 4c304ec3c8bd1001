import { beforeAll, describe, expect, it } from "vitest";
import { base64urlDecode, base64urlEncode, utf8 } from "../../contract/encoding.ts";
import { generateTicketKeyPair, importTicketPrivateKey, signTicket, TicketError } from "../../contract/ticket.ts";
import { TicketKeyring } from "../../gpu-runner/src/ticket-keys.ts";
import { ticketPayload } from "./tickets.ts";

let keyring: TicketKeyring;
let signer: CryptoKey;
let otherSigner: CryptoKey;

beforeAll(async () => {
  const pair = await generateTicketKeyPair();
  const other = await generateTicketKeyPair();
  signer = await importTicketPrivateKey(pair.privateKey);
  otherSigner = await importTicketPrivateKey(other.privateKey);
  keyring = new TicketKeyring({ fixed: new Map([["k1", pair.publicKey]]) });
  await keyring.init();
});

async function rejection(token: string): Promise<string> {
  try {
    await keyring.verify(token);
  } catch (e) {
    expect(e).toBeInstanceOf(TicketError);
    return (e as TicketError).code;
  }
  throw new Error("ticket was accepted");
}

/** Re-encodes the payload part with one field changed, keeping the original signature. */
function tamper(token: string, change: (p: Record<string, unknown>) => void): string {
  const [body, sig] = token.split(".") as [string, string];
  const payload = JSON.parse(new TextDecoder().decode(base64urlDecode(body)));
  change(payload);
  return `${base64urlEncode(utf8(JSON.stringify(payload)))}.${sig}`;
}

describe("the runner's ticket verification", () => {
  it("accepts a valid ticket and returns its payload", async () => {
    const p = ticketPayload();
    expect(await keyring.verify(await signTicket(p, signer))).toEqual(p);
  });

  it("rejects an unsigned ticket (payload only, or an empty signature)", async () => {
    const body = base64urlEncode(utf8(JSON.stringify(ticketPayload())));
    expect(await rejection(body)).toBe("malformed");
    expect(await rejection(`${body}.`)).toBe("malformed");
    expect(await rejection(`${body}.${base64urlEncode(new Uint8Array(64))}`)).toBe("bad_signature");
  });

  it("rejects an expired ticket", async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(await rejection(await signTicket(ticketPayload({ issued_at: now - 100, expires_at: now - 1 }), signer))).toBe(
      "expired",
    );
  });

  it("rejects a ticket signed by another key under a known kid, and an unknown kid", async () => {
    expect(await rejection(await signTicket(ticketPayload(), otherSigner))).toBe("bad_signature");
    expect(await rejection(await signTicket(ticketPayload({ kid: "k2" }), signer))).toBe("unknown_key");
  });

  const changes: [string, (p: Record<string, unknown>) => void][] = [
    ["job_id", (p) => (p.job_id = "job_other")],
    ["lease_id", (p) => (p.lease_id = "lease_other")],
    ["attempt", (p) => (p.attempt = 2)],
    ["operation", (p) => (p.operation = "watermark.embed")],
    ["params", (p) => (p.params = { strength: 4 })],
    ["models", (p) => (p.models = [{ id: "m", version: "1", sha256: "0".repeat(64) }])],
    ["input url", (p) => ((p.inputs as { url: string }[])[0]!.url = "http://evil.example/x")],
    ["input bytes", (p) => ((p.inputs as { bytes: number }[])[0]!.bytes = 11)],
    ["outputs", (p) => (p.outputs = [{ name: "image", url: "http://evil.example/up", key: "k" }])],
    ["limits", (p) => (p.limits = { max_pixels: 1e9 })],
    ["expires_at", (p) => (p.expires_at = (p.expires_at as number) + 3600)],
  ];
  for (const [field, change] of changes) {
    it(`rejects a ticket whose ${field} was changed after signing`, async () => {
      const token = await signTicket(ticketPayload(), signer);
      expect(await rejection(tamper(token, change))).toBe("bad_signature");
    });
  }
});
