import { base64urlEncode } from "../../../contract/encoding.ts";

/**
 * Prefixed random ids. The leading 12 hex digits are the creation time in ms, so ids sort roughly by
 * age (useful when reading logs), while the 80 random bits make them unguessable.
 */
export function newId(prefix: string): string {
  const time = Date.now().toString(16).padStart(12, "0");
  const rand = Array.from(crypto.getRandomValues(new Uint8Array(10)), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${prefix}_${time}${rand}`;
}

export function randomToken(bytes = 32): string {
  return base64urlEncode(crypto.getRandomValues(new Uint8Array(bytes)));
}
