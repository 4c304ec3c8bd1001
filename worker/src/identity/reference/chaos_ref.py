"""Independent reference of the Vigil identity cipher (coupled skew tent maps) (docs/identity-crypto.md) in CPython.

Recomputes test/fixtures/identity-vectors.json from its inputs, with Python's own float64 arithmetic,
hmac/hashlib HKDF (RFC 5869) and no code shared with the TypeScript implementation. Agreement is the
cross-platform determinism check:  /usr/bin/python3 worker/src/identity/reference/chaos_ref.py
"""

import hashlib
import hmac
import json
import math
import sys
from pathlib import Path

SALT = b"vigil/identity/v1"
BURN_IN = 1000
FEEDBACK = 2.0**-20


def hkdf(ikm: bytes, info: bytes, n: int) -> bytes:
    prk = hmac.new(SALT, ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < n:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:n]


def params(b: bytes) -> dict:
    f52 = lambda at: int.from_bytes(b[at : at + 7], "big") % 2**52 / 2**52
    f32 = lambda at: int.from_bytes(b[at : at + 4], "big") / 2**32
    skew = lambda u: 0.3 + 0.3 * u if u < 0.5 else 0.55 + 0.3 * (u - 0.5)
    return dict(x0=0.05 + 0.9 * f52(0), y0=0.05 + 0.9 * f52(7), p1=skew(f32(14)), p2=skew(f32(18)),
                eps=0.02 + 0.08 * f32(22), extraBurn=b[26])


class System:
    def __init__(self, p: dict):
        self.x, self.y, self.p = p["x0"], p["y0"], p
        for _ in range(BURN_IN + p["extraBurn"]):
            self.step()

    def step(self):
        p = self.p
        tent = lambda u, q: u / q if u < q else (1 - u) / (1 - q)
        fx, fy = tent(self.x, p["p1"]), tent(self.y, p["p2"])
        self.x = (1 - p["eps"]) * fx + p["eps"] * fy
        self.y = (1 - p["eps"]) * fy + p["eps"] * fx
        if not 0 < self.x < 1:
            self.x = p["y0"]
        if not 0 < self.y < 1:
            self.y = p["x0"]

    def byte(self) -> int:
        self.step()
        return (math.floor(self.x * 2**40) % 256) ^ (math.floor(self.y * 2**40) % 256)

    def feed(self, bit: int):
        if bit:
            self.x = self.x + FEEDBACK if self.x < 0.5 else self.x - FEEDBACK

    def below(self, n: int) -> int:
        mask = 1
        while mask < n:
            mask *= 2
        for _ in range(200):
            v = ((self.byte() << 8) | self.byte()) & (mask - 1)
            if v < n:
                return v
        raise RuntimeError("degenerate stream")


def encrypt(ikm: bytes, nonce: bytes, plain: list) -> list:
    okm = hkdf(ikm, b"chaos" + nonce, 64)
    a, n = System(params(okm[:32])), len(plain)
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = a.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    mid = []
    for i in range(n):
        c = plain[perm[i]] ^ (a.byte() & 1)
        mid.append(c)
        a.feed(c)
    b, out = System(params(okm[32:])), [0] * n
    for i in range(n - 1, -1, -1):
        c = mid[i] ^ (b.byte() & 1)
        out[i] = c
        b.feed(c)
    return out


def to_bits(h: str, n: int) -> list:
    return [(int(h[i // 4], 16) >> (3 - i % 4)) & 1 for i in range(n)]


def to_hex(bits: list) -> str:
    bits = bits + [0] * (-len(bits) % 4)
    return "".join("%x" % int("".join(map(str, bits[i : i + 4])), 2) for i in range(0, len(bits), 4))


def pack(bits: list) -> bytes:
    bits = bits + [0] * (-len(bits) % 8)
    return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


def payload(ikm: bytes, layout: dict, slot: int, ref: int, code) -> str:
    lb = bytes([layout["totalBits"], layout["keySlotBits"], layout["refBits"], layout["codeBits"]])
    tag_bits = layout["totalBits"] - layout["keySlotBits"] - layout["refBits"] - layout["codeBits"]
    mode = 1 if code is not None else 0
    msg = b"tag" + lb + bytes([mode]) + slot.to_bytes(2, "big") + ref.to_bytes(4, "big") + (pack(code) if code else b"")
    mac = hmac.new(hkdf(ikm, b"mac", 32), msg, hashlib.sha256).digest()
    width = tag_bits if code is not None else tag_bits + layout["codeBits"]
    tag = [(mac[i // 8] >> (7 - i % 8)) & 1 for i in range(width)]
    body = (code + tag) if code is not None else tag
    nonce = lb + slot.to_bytes(2, "big") + ref.to_bytes(4, "big")
    head = [(slot >> (layout["keySlotBits"] - 1 - i)) & 1 for i in range(layout["keySlotBits"])]
    head += [(ref >> (layout["refBits"] - 1 - i)) & 1 for i in range(layout["refBits"])]
    return to_hex(head + encrypt(ikm, nonce, body))


def main() -> int:
    path = Path(__file__).resolve().parents[4] / "test" / "fixtures" / "identity-vectors.json"
    v = json.loads(path.read_text())
    bad = 0
    for c in v["chaos"]:
        s = System(params(bytes.fromhex(c["params_bytes_hex"])))
        got = bytes(s.byte() for _ in range(32)).hex()
        ok = got == c["first_bytes_hex"] and s.x == c["x_after"] and s.y == c["y_after"]
        bad += not ok
        print("chaos", ok)
    for c in v["cipher"]:
        got = to_hex(encrypt(bytes.fromhex(c["master_key_hex"]), bytes.fromhex(c["nonce_hex"]), to_bits(c["plain_hex"], c["bits"])))
        bad += got != c["cipher_hex"]
        print("cipher", got == c["cipher_hex"])
    L = v["layout"]
    for c in v["payload"]:
        code = to_bits(c["code_hex"], L["codeBits"]) if c["code_hex"] else None
        got = payload(bytes.fromhex(c["master_key_hex"]), L, c["slot"], c["ref"], code)
        bad += got != c["payload_hex"]
        print("payload", got == c["payload_hex"], got)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
