/**
 * SSRF guard for webhook targets. The WHATWG URL parser already normalises numeric IPv4 forms
 * ("2130706433", "0x7f.1", "0177.0.0.1") to dotted quads, so checking the parsed hostname covers them.
 * Workers cannot resolve DNS before fetching, so a public name that resolves to a private address is
 * not caught here; Cloudflare's egress does not route to private networks, which closes that gap in production.
 */

export type UrlVerdict = { ok: true; url: URL } | { ok: false; reason: string };

// [network, prefix length] (RFC 6890 special-purpose and private ranges).
const BLOCKED_V4: [number, number][] = [
  [0x00000000, 8], // "this network"
  [0x0a000000, 8], // private
  [0x64400000, 10], // carrier-grade NAT
  [0x7f000000, 8], // loopback
  [0xa9fe0000, 16], // link-local, includes the 169.254.169.254 metadata service
  [0xac100000, 12], // private
  [0xc0000000, 24], // IETF protocol assignments
  [0xc0000200, 24], // documentation
  [0xc0a80000, 16], // private
  [0xc6120000, 15], // benchmarking
  [0xc6336400, 24], // documentation
  [0xcb007100, 24], // documentation
  [0xe0000000, 4], // multicast
  [0xf0000000, 4], // reserved and broadcast
];

const BLOCKED_NAMES = ["localhost", "metadata.google.internal", "metadata", "instance-data"];
const BLOCKED_SUFFIXES = [".localhost", ".local", ".internal", ".localdomain", ".home.arpa"];

function ipv4ToInt(host: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function isBlockedIPv4(host: string): boolean {
  const ip = ipv4ToInt(host);
  if (ip === null) return false;
  return BLOCKED_V4.some(([net, len]) => {
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    return (ip & mask) >>> 0 === net;
  });
}

/** Expands an IPv6 literal (no brackets) into eight 16-bit groups; handles "::" and a trailing dotted quad. */
function expandIPv6(text: string): number[] | null {
  let s = text.toLowerCase().split("%")[0]!;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = ipv4ToInt(v4[1]!);
    if (n === null) return null;
    s = s.slice(0, -v4[1]!.length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  if (fill < 0) return null;
  const groups = [...head, ...Array<string>(fill).fill("0"), ...tail];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return null;
  return groups.map((g) => parseInt(g, 16));
}

export function isBlockedIPv6(host: string): boolean {
  const g = expandIPv6(host);
  if (!g) return true; // unparseable literal: refuse rather than guess
  const [a, b, c, d, e, f, g6, h] = g as [number, number, number, number, number, number, number, number];
  const zeroPrefix = a === 0 && b === 0 && c === 0 && d === 0 && e === 0;
  if (zeroPrefix && f === 0 && g6 === 0 && (h === 0 || h === 1)) return true; // :: and ::1
  const embedded = `${g6 >> 8}.${g6 & 255}.${h >> 8}.${h & 255}`;
  if (zeroPrefix && (f === 0xffff || f === 0)) return isBlockedIPv4(embedded) || f === 0; // v4-mapped / v4-compatible
  if (a === 0x64 && b === 0xff9b) return isBlockedIPv4(embedded); // NAT64
  if ((a & 0xfe00) === 0xfc00) return true; // unique local (includes fd00:ec2::254, the AWS metadata address)
  if ((a & 0xffc0) === 0xfe80) return true; // link-local
  if ((a & 0xff00) === 0xff00) return true; // multicast
  if (a === 0x2001 && b === 0x0db8) return true; // documentation
  return false;
}

export function checkWebhookUrl(raw: string, mode: string): UrlVerdict {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: "not a valid absolute URL" };
  }
  const local = mode === "local";
  if (url.protocol !== "https:" && !(local && url.protocol === "http:"))
    return { ok: false, reason: "webhook URLs must use https" };
  if (url.username || url.password) return { ok: false, reason: "credentials in webhook URLs are not allowed" };
  if (local) return { ok: true, url };
  const host = url.hostname.toLowerCase().replace(/\.$/, "");
  if (!host) return { ok: false, reason: "missing host" };
  if (BLOCKED_NAMES.includes(host) || BLOCKED_SUFFIXES.some((s) => host.endsWith(s))) {
    return { ok: false, reason: `host ${host} is not a public address` };
  }
  if (host.startsWith("[")) {
    if (isBlockedIPv6(host.slice(1, -1))) return { ok: false, reason: `address ${host} is private, loopback or link-local` };
  } else if (/^[\d.]+$/.test(host)) {
    if (ipv4ToInt(host) === null || isBlockedIPv4(host))
      return { ok: false, reason: `address ${host} is private, loopback or link-local` };
  } else if (!host.includes(".")) {
    return { ok: false, reason: `host ${host} is not a public name` };
  }
  return { ok: true, url };
}
