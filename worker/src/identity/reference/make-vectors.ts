/**
 * Prints the published test vectors (test/fixtures/identity-vectors.json) from the TypeScript
 * implementation: `npx tsx worker/src/identity/reference/make-vectors.ts > test/fixtures/identity-vectors.json`.
 * chaos_ref.py recomputes them independently (CPython floats) as the cross-platform check.
 */

import { hex } from "../../../../contract/encoding.ts";
import { bitsToHex, hexToBits } from "../bits.ts";
import { CoupledSkewTent, deriveCipherKeys, encryptBits, importMasterKey, paramsFromBytes } from "../chaos.ts";
import { DEFAULT_LAYOUT, encodePayload } from "../payload.ts";

const fromHex = (h: string) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
/** Fixed, obviously non-secret inputs: SHA-256 of short labels. */
async function label(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

async function main() {
  const chaos = [];
  for (const name of ["chaos-0", "chaos-1", "chaos-2"]) {
    const bytes = await label(name);
    const p = paramsFromBytes(bytes);
    const sys = new CoupledSkewTent(p);
    const out = Uint8Array.from({ length: 32 }, () => sys.nextByte());
    chaos.push({ params_bytes_hex: hex(bytes), params: p, first_bytes_hex: hex(out), x_after: sys.x, y_after: sys.y });
  }
  const cipher = [];
  for (const [name, plainHex, n] of [
    ["cipher-0", "0000000000", 40],
    ["cipher-1", "ffffffffff", 40],
    ["cipher-2", "0123456789abcdef", 64],
  ] as const) {
    const master = await label(name);
    const nonce = fromHex("00010203040506070809");
    const keys = await deriveCipherKeys(await importMasterKey(master), nonce);
    const plain = hexToBits(plainHex, n);
    cipher.push({
      master_key_hex: hex(master),
      nonce_hex: hex(nonce),
      bits: n,
      plain_hex: plainHex,
      cipher_hex: bitsToHex(encryptBits(keys, plain)),
    });
  }
  const payload = [];
  for (const [name, slot, ref, code] of [
    ["payload-0", 0, 0, "00000000"],
    ["payload-1", 5, 123456, "deadbeef"],
    ["payload-2", 15, 1048575, null],
    ["payload-3", 5, 123457, "deadbeef"],
  ] as const) {
    const master = await label(name);
    const bits = await encodePayload(await importMasterKey(master), DEFAULT_LAYOUT, {
      slot,
      ref,
      code: code ? hexToBits(code, DEFAULT_LAYOUT.codeBits) : null,
    });
    payload.push({ master_key_hex: hex(master), slot, ref, code_hex: code, payload_hex: bitsToHex(bits) });
  }
  const doc = {
    description: "Vigil identity cipher test vectors (docs/identity-crypto.md). Keys are SHA-256 of labels; not secrets.",
    layout: DEFAULT_LAYOUT,
    chaos,
    cipher,
    payload,
  };
  console.log(JSON.stringify(doc, null, 2));
}

await main();
