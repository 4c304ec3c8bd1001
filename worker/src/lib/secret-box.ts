import { base64urlDecode, base64urlEncode, utf8 } from "../../../contract/encoding.ts";

/**
 * Encryption at rest for secrets the worker must read back (webhook signing secrets): AES-256-GCM under
 * the MASTER_KEY_ENCRYPTION_KEY secret (32 bytes, base64url), with the owning row id as additional data so
 * a ciphertext copied onto another row does not decrypt. Stored as "enc1:" + base64url(iv ‖ ciphertext ‖ tag).
 * Without the secret configured, values are stored as given (local development only).
 */

const PREFIX = "enc1:";

async function aesKey(secret: string): Promise<CryptoKey> {
  const raw = base64urlDecode(secret);
  if (raw.length !== 32) throw new Error("MASTER_KEY_ENCRYPTION_KEY must be 32 bytes (base64url)");
  return crypto.subtle.importKey("raw", raw as BufferSource, "AES-GCM", false, ["encrypt", "decrypt"]);
}

export async function sealSecret(keySecret: string | undefined, aad: string, plaintext: string): Promise<string> {
  if (!keySecret) return plaintext;
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: utf8(aad) as BufferSource },
      await aesKey(keySecret),
      utf8(plaintext) as BufferSource,
    ),
  );
  const out = new Uint8Array(iv.length + ct.length);
  out.set(iv);
  out.set(ct, iv.length);
  return PREFIX + base64urlEncode(out);
}

export async function openSecret(keySecret: string | undefined, aad: string, stored: string): Promise<string> {
  if (!stored.startsWith(PREFIX)) return stored;
  if (!keySecret) throw new Error("a sealed secret needs MASTER_KEY_ENCRYPTION_KEY");
  const bytes = base64urlDecode(stored.slice(PREFIX.length));
  const pt = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: bytes.subarray(0, 12) as BufferSource, additionalData: utf8(aad) as BufferSource },
    await aesKey(keySecret),
    bytes.subarray(12) as BufferSource,
  );
  return new TextDecoder().decode(pt);
}
