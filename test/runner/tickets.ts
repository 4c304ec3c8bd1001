import { PROTOCOL_VERSION, type TicketPayload } from "../../contract/protocol.ts";

/** A valid ticket payload for tests; override any field. */
export function ticketPayload(overrides: Partial<TicketPayload> = {}): TicketPayload {
  const now = Math.floor(Date.now() / 1000);
  return {
    v: PROTOCOL_VERSION,
    job_id: "job_test1",
    lease_id: "lease_test1",
    attempt: 1,
    operation: "inspect",
    params: {},
    models: [],
    inputs: [{ name: "0", url: "http://127.0.0.1:1/objects/in?sig=x", content_type: "image/jpeg", bytes: 10 }],
    outputs: [],
    limits: { max_pixels: 100_000_000 },
    issued_at: now,
    expires_at: now + 120,
    kid: "k1",
    ...overrides,
  };
}
