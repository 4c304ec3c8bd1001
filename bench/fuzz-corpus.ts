import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { uniform as rng } from "../contract/random.ts";

/**
 * A seeded, structure-aware corpus of broken images for the runner's input path (issue 12, fault campaign). Valid
 * seed images of every decodable format and its odd variants (bit depths 1/2/4/16, palettes, grey+alpha, interlace,
 * CMYK, EXIF orientation, APNG, animated GIF and WebP, tiled and compressed TIFF) are made with sharp or by hand,
 * then each corpus entry is one seed put through one mutation that knows the format's structure: dimensions patched
 * to extreme or lying values (PNG IHDR, JPEG SOF, GIF screen and frame, WebP VP8X/VP8/VP8L, TIFF tags), with the
 * CRC fixed or not; truncation; bit flips; random and zeroed runs; lying chunk and segment lengths; huge metadata
 * (PNG tEXt/zTXt/iTXt/iCCP, a zTXt that inflates to 64 MB, JPEG APPn/COM, WebP EXIF/XMP/ICCP, TIFF tag counts);
 * spliced, duplicated and dropped chunks. Same seed, same corpus: only the generator is committed.
 */

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

export type Format = "png" | "jpeg" | "webp" | "gif" | "tiff";
export interface Seed {
  name: string;
  format: Format;
  bytes: Buffer;
}
export interface FuzzCase {
  index: number;
  seed: string;
  format: Format;
  mutation: string;
  bytes: Buffer;
}

// ---- PNG by hand: the variants sharp does not write (grey 1/2/4 bit, grey+alpha 16, APNG) ----------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
export function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) crc = CRC_TABLE[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function ihdr(width: number, height: number, depth: number, colourType: number): Buffer {
  const d = Buffer.alloc(13);
  d.writeUInt32BE(width, 0);
  d.writeUInt32BE(height, 4);
  d.set([depth, colourType, 0, 0, 0], 8);
  return pngChunk("IHDR", d);
}

/** Unfiltered scanlines of random samples for a PNG of this layout. */
function pngRows(r: Rand, width: number, height: number, depth: number, samplesPerPixel: number): Buffer {
  const rowBytes = Math.ceil((width * samplesPerPixel * depth) / 8);
  const raw = Buffer.alloc((rowBytes + 1) * height);
  for (let y = 0; y < height; y++) for (let i = 1; i <= rowBytes; i++) raw[y * (rowBytes + 1) + i] = int(r, 0, 255);
  return raw;
}

function handPng(r: Rand, width: number, height: number, depth: number, colourType: number): Buffer {
  const spp = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colourType]!;
  const chunks = [ihdr(width, height, depth, colourType)];
  if (colourType === 3) {
    const n = 1 << depth;
    chunks.push(pngChunk("PLTE", Buffer.from(Array.from({ length: n * 3 }, () => int(r, 0, 255)))));
  }
  chunks.push(pngChunk("IDAT", deflateSync(pngRows(r, width, height, depth, spp))), pngChunk("IEND", Buffer.alloc(0)));
  return Buffer.concat([PNG_SIGNATURE, ...chunks]);
}

/** A two-frame APNG (acTL, fcTL + IDAT, fcTL + fdAT), 8-bit RGB. */
function apng(r: Rand, width: number, height: number): Buffer {
  const fctl = (seq: number) => {
    const d = Buffer.alloc(26);
    d.writeUInt32BE(seq, 0);
    d.writeUInt32BE(width, 4);
    d.writeUInt32BE(height, 8);
    d.writeUInt16BE(1, 20); // delay 1/10 s
    d.writeUInt16BE(10, 22);
    return pngChunk("fcTL", d);
  };
  const actl = Buffer.alloc(8);
  actl.writeUInt32BE(2, 0);
  const frame2 = deflateSync(pngRows(r, width, height, 8, 3));
  const seq = Buffer.alloc(4);
  seq.writeUInt32BE(2, 0);
  return Buffer.concat([
    PNG_SIGNATURE,
    ihdr(width, height, 8, 2),
    pngChunk("acTL", actl),
    fctl(0),
    pngChunk("IDAT", deflateSync(pngRows(r, width, height, 8, 3))),
    fctl(1),
    pngChunk("fdAT", Buffer.concat([seq, frame2])),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

// ---- the seeds ----------------------------------------------------------------------------------------------

/**
 * Noise from the seeded generator as raw pixels (sharp's own `create.noise` draws from an unseeded source: two
 * processes made different seed images, so the same FUZZ_SEED did not give the same corpus). Smoothed a little so
 * the encoders see some structure.
 */
function noise(r: Rand, width: number, height: number, channels: 3 | 4 = 3) {
  const raw = Buffer.alloc(width * height * channels);
  for (let i = 0; i < raw.length; i++) raw[i] = int(r, 0, 255);
  return sharp(raw, { raw: { width, height, channels } }).blur(0.8);
}

/** Each seed is a small valid image (decoding stays cheap, so the corpus can be large). */
export async function makeSeeds(seed: number): Promise<Seed[]> {
  const r = rng(seed ^ 0x5eed);
  const w = 48;
  const h = 36;
  const basePng = await noise(r, w, h).png().toBuffer();
  const base = async () => sharp(basePng);
  const frames = (n: number) =>
    sharp(
      Array.from({ length: n }, (_, i) => ({
        create: { width: w, height: h, channels: 3 as const, background: { r: 60 * i, g: 200 - 50 * i, b: 90 } },
      })) as unknown as Parameters<typeof sharp>[0],
      { join: { animated: true } },
    );
  const s: [string, Format, Promise<Buffer> | Buffer][] = [
    ["png_rgb8", "png", (await base()).png().toBuffer()],
    ["png_rgba8", "png", noise(r, w, h, 4).png().toBuffer()],
    ["png_grey8", "png", (await base()).greyscale().png().toBuffer()],
    ["png_rgb16", "png", (await base()).toColourspace("rgb16").png().toBuffer()],
    ["png_grey16", "png", (await base()).toColourspace("grey16").png().toBuffer()],
    ["png_interlaced", "png", (await base()).png({ progressive: true }).toBuffer()],
    ["png_palette1", "png", (await base()).png({ palette: true, colours: 2 }).toBuffer()],
    ["png_palette2", "png", (await base()).png({ palette: true, colours: 4 }).toBuffer()],
    ["png_palette4", "png", (await base()).png({ palette: true, colours: 16 }).toBuffer()],
    ["png_palette8", "png", (await base()).png({ palette: true, colours: 256 }).toBuffer()],
    ["png_grey1", "png", handPng(r, w, h, 1, 0)],
    ["png_grey2", "png", handPng(r, w, h, 2, 0)],
    ["png_grey4", "png", handPng(r, w, h, 4, 0)],
    ["png_greyalpha8", "png", handPng(r, w, h, 8, 4)],
    ["png_greyalpha16", "png", handPng(r, w, h, 16, 4)],
    ["png_rgba16", "png", handPng(r, w, h, 16, 6)],
    ["png_apng", "png", apng(r, w, h)],
    ["jpeg_baseline", "jpeg", (await base()).jpeg({ quality: 80 }).toBuffer()],
    ["jpeg_progressive", "jpeg", (await base()).jpeg({ quality: 80, progressive: true }).toBuffer()],
    ["jpeg_444", "jpeg", (await base()).jpeg({ quality: 90, chromaSubsampling: "4:4:4" }).toBuffer()],
    ["jpeg_grey", "jpeg", (await base()).greyscale().jpeg().toBuffer()],
    ["jpeg_cmyk", "jpeg", (await base()).toColourspace("cmyk").jpeg().toBuffer()],
    ["jpeg_exif_rot6_icc", "jpeg", (await base()).withMetadata({ orientation: 6 }).withIccProfile("p3").jpeg().toBuffer()],
    ["webp_lossy", "webp", (await base()).webp({ quality: 60 }).toBuffer()],
    ["webp_lossless", "webp", (await base()).webp({ lossless: true }).toBuffer()],
    ["webp_alpha", "webp", noise(r, w, h, 4).webp({ quality: 60 }).toBuffer()],
    ["webp_animated", "webp", frames(3).webp({ quality: 60 }).toBuffer()],
    ["gif_still", "gif", (await base()).gif().toBuffer()],
    ["gif_animated", "gif", frames(3).gif().toBuffer()],
    ["gif_alpha", "gif", noise(r, w, h, 4).gif().toBuffer()],
    ["tiff_none", "tiff", (await base()).tiff({ compression: "none" }).toBuffer()],
    ["tiff_lzw", "tiff", (await base()).tiff({ compression: "lzw" }).toBuffer()],
    ["tiff_deflate_alpha", "tiff", noise(r, w, h, 4).tiff({ compression: "deflate" }).toBuffer()],
    ["tiff_jpeg", "tiff", (await base()).tiff({ compression: "jpeg" }).toBuffer()],
    ["tiff_packbits_grey", "tiff", (await base()).greyscale().tiff({ compression: "packbits" }).toBuffer()],
    ["tiff_rgb16", "tiff", (await base()).toColourspace("rgb16").tiff().toBuffer()],
    ["tiff_tiled", "tiff", (await base()).tiff({ tile: true, tileWidth: 16, tileHeight: 16 }).toBuffer()],
  ];
  return Promise.all(s.map(async ([name, format, bytes]) => ({ name, format, bytes: await bytes })));
}

// ---- structure: where each format keeps its dimensions, chunks and segments ------------------------------------

interface Span {
  at: number;
  length: number;
  type: string;
}

function pngChunks(b: Buffer): Span[] {
  const out: Span[] = [];
  for (let at = 8; at + 12 <= b.length;) {
    const length = b.readUInt32BE(at);
    out.push({ at, length, type: b.toString("latin1", at + 4, at + 8) });
    if (at + 12 + length > b.length) break;
    at += 12 + length;
  }
  return out;
}

function jpegSegments(b: Buffer): Span[] {
  const out: Span[] = [];
  for (let at = 2; at + 4 <= b.length && b[at] === 0xff;) {
    const marker = b[at + 1]!;
    if (marker === 0xd9 || marker === 0xda) {
      out.push({ at, length: 0, type: marker.toString(16) });
      break;
    }
    const length = b.readUInt16BE(at + 2);
    out.push({ at, length, type: marker.toString(16) });
    at += 2 + length;
  }
  return out;
}

function riffChunks(b: Buffer): Span[] {
  const out: Span[] = [];
  for (let at = 12; at + 8 <= b.length;) {
    const length = b.readUInt32LE(at + 4);
    out.push({ at, length, type: b.toString("latin1", at, at + 4) });
    at += 8 + length + (length & 1);
  }
  return out;
}

/** IFD0 entries of a TIFF: offset of each 12-byte entry and its tag. */
function tiffEntries(b: Buffer): { at: number; tag: number; le: boolean }[] {
  const le = b[0] === 0x49;
  const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const ifd = u32(4);
  if (ifd + 2 > b.length) return [];
  const out = [];
  for (let k = 0; k < u16(ifd); k++) {
    const at = ifd + 2 + k * 12;
    if (at + 12 > b.length) break;
    out.push({ at, tag: u16(at), le });
  }
  return out;
}

// ---- mutations -------------------------------------------------------------------------------------------------

/**
 * Extreme and lying sizes: empty, tiny, the poison shape both ways, just under and over the pixel limits, the
 * formats' maxima (WebP 16383, JPEG/GIF 65535), and u32 values that overflow a naive width * height * channels.
 */
const EXTREME_DIMS: readonly [number, number][] = [
  [0, 0],
  [0, 36],
  [48, 0],
  [1, 1],
  [1, 65535],
  [65535, 1],
  [20000, 50],
  [50, 20000],
  [31, 31],
  [32, 512],
  [7071, 7071], // 50.0 MP: just under face/watermark's max_pixels
  [7072, 7072], // just over
  [3606, 3606], // 13.0 MP, lowlight's
  [10000, 10001], // just over inspect's 100 MP
  [16383, 16383],
  [65535, 65535],
  [0x7fffffff, 2],
  [0xffffffff, 0xffffffff],
  [0x10000, 0x10000],
  [49, 36], // off by one: the data does not match
  [48, 35],
];

type Mutation = (b: Buffer, r: Rand, format: Format) => Buffer;

function fixPngCrc(b: Buffer, c: Span): void {
  if (c.at + 12 + c.length <= b.length) b.writeUInt32BE(crc32(b.subarray(c.at + 4, c.at + 8 + c.length)), c.at + 8 + c.length);
}

const writeU16 = (b: Buffer, v: number, at: number, le: boolean) =>
  le ? b.writeUInt16LE(v & 0xffff, at) : b.writeUInt16BE(v & 0xffff, at);

function patchDims(b: Buffer, r: Rand, format: Format): Buffer {
  const out = Buffer.from(b);
  const [w, h] = pick(r, EXTREME_DIMS);
  const u16w = Math.min(w, 0xffff);
  const u16h = Math.min(h, 0xffff);
  if (format === "png") {
    const c = pngChunks(out).find((x) => x.type === "IHDR");
    if (!c) return out;
    out.writeUInt32BE(w >>> 0, c.at + 8);
    out.writeUInt32BE(h >>> 0, c.at + 12);
    if (r() < 0.7) fixPngCrc(out, c); // a correct CRC gets past the chunk check to the size checks
    // APNG: the frame control chunks lie too, sometimes.
    if (r() < 0.5)
      for (const f of pngChunks(out).filter((x) => x.type === "fcTL")) {
        out.writeUInt32BE(w >>> 0, f.at + 12);
        out.writeUInt32BE(h >>> 0, f.at + 16);
        fixPngCrc(out, f);
      }
  } else if (format === "jpeg") {
    const sof = jpegSegments(out).find((s) => /^c[0-35-79a-bd-f]$/.test(s.type));
    if (!sof) return out;
    out.writeUInt16BE(u16h, sof.at + 5);
    out.writeUInt16BE(u16w, sof.at + 7);
  } else if (format === "gif") {
    if (r() < 0.8) {
      out.writeUInt16LE(u16w, 6);
      out.writeUInt16LE(u16h, 8);
    }
    // The first image descriptor (0x2c): its own size and position, which may lie outside the screen.
    const at = out.indexOf(0x2c, 13);
    if (at > 0 && at + 9 < out.length && r() < 0.6) {
      if (r() < 0.3) out.writeUInt16LE(int(r, 0, 0xffff), at + 1);
      out.writeUInt16LE(u16w, at + 5);
      out.writeUInt16LE(u16h, at + 7);
    }
  } else if (format === "webp") {
    for (const c of riffChunks(out)) {
      const d = c.at + 8;
      if (c.type === "VP8X" && d + 10 <= out.length) {
        out.writeUIntLE(Math.max(0, w - 1) & 0xffffff, d + 4, 3);
        out.writeUIntLE(Math.max(0, h - 1) & 0xffffff, d + 7, 3);
      } else if (c.type === "VP8 " && d + 10 <= out.length && r() < 0.7) {
        out.writeUInt16LE((u16w & 0x3fff) | (int(r, 0, 3) << 14), d + 6);
        out.writeUInt16LE((u16h & 0x3fff) | (int(r, 0, 3) << 14), d + 8);
      } else if (c.type === "VP8L" && d + 5 <= out.length && r() < 0.7) {
        const old = out.readUInt32LE(d + 1);
        out.writeUInt32LE(((old & 0xf0000000) | (((h - 1) & 0x3fff) * 0x4000 + ((w - 1) & 0x3fff))) >>> 0, d + 1);
      } else if (c.type === "ANMF" && d + 16 <= out.length && r() < 0.5) {
        out.writeUIntLE(Math.max(0, w - 1) & 0xffffff, d + 6, 3);
        out.writeUIntLE(Math.max(0, h - 1) & 0xffffff, d + 9, 3);
      }
    }
  } else {
    for (const e of tiffEntries(out)) {
      if (e.tag !== 256 && e.tag !== 257) continue;
      const v = e.tag === 256 ? w : h;
      const asLong = v > 0xffff || r() < 0.3;
      writeU16(out, asLong ? 4 : 3, e.at + 2, e.le);
      if (asLong) e.le ? out.writeUInt32LE(v >>> 0, e.at + 8) : out.writeUInt32BE(v >>> 0, e.at + 8);
      else writeU16(out, v, e.at + 8, e.le);
    }
  }
  return out;
}

const truncate: Mutation = (b, r) => {
  // Mostly inside the first few hundred bytes (headers), sometimes anywhere, sometimes to nothing at all.
  const at = r() < 0.05 ? 0 : r() < 0.5 ? int(r, 1, Math.min(b.length - 1, 300)) : int(r, 1, b.length - 1);
  return b.subarray(0, at);
};

const bitflip: Mutation = (b, r) => {
  const out = Buffer.from(b);
  const flips = pick(r, [1, 1, 2, 4, 8, 32]);
  const from = r() < 0.5 ? 8 : 0; // sometimes the signature too
  for (let i = 0; i < flips; i++) {
    const at = r() < 0.6 ? int(r, from, Math.min(out.length - 1, 400)) : int(r, from, out.length - 1);
    out[at]! ^= 1 << int(r, 0, 7);
  }
  return out;
};

const overwrite: Mutation = (b, r) => {
  const out = Buffer.from(b);
  const at = int(r, 4, out.length - 1);
  const len = Math.min(out.length - at, int(r, 1, 64));
  const fill = pick(r, ["random", "zero", "ff"] as const);
  for (let i = 0; i < len; i++) out[at + i] = fill === "zero" ? 0 : fill === "ff" ? 0xff : int(r, 0, 255);
  return out;
};

/** A chunk or segment whose length field lies: huge, zero, off by a little, or past the end. */
const lyingLength: Mutation = (b, r, format) => {
  const out = Buffer.from(b);
  const value = pick(r, [0, 1, 0x7fffffff, 0xffffffff, out.length, int(r, 0, 64)]);
  if (format === "png") {
    const c = pick(r, pngChunks(out));
    if (c) {
      out.writeUInt32BE(value >>> 0, c.at);
      if (r() < 0.5) fixPngCrc(out, c);
    }
  } else if (format === "jpeg") {
    const s = pick(
      r,
      jpegSegments(out).filter((x) => x.length > 0),
    );
    if (s) out.writeUInt16BE(value & 0xffff, s.at + 2);
  } else if (format === "webp") {
    if (r() < 0.3)
      out.writeUInt32LE(value >>> 0, 4); // RIFF size
    else {
      const c = pick(r, riffChunks(out));
      if (c) out.writeUInt32LE(value >>> 0, c.at + 4);
    }
  } else if (format === "gif") {
    // A sub-block length or the LZW minimum code size, after the colour table.
    const at = out.indexOf(0x2c, 13);
    if (at > 0 && at + 11 < out.length) out[at + 10 + (r() < 0.5 ? 0 : 1)] = value & 0xff;
  } else {
    const entries = tiffEntries(out);
    if (r() < 0.3 || !entries.length) {
      const le = out[0] === 0x49;
      le ? out.writeUInt32LE(value >>> 0, 4) : out.writeUInt32BE(value >>> 0, 4); // IFD offset
    } else {
      const e = pick(r, entries);
      // The count (how many values) or the offset where they live.
      const at = e.at + (r() < 0.5 ? 4 : 8);
      e.le ? out.writeUInt32LE(value >>> 0, at) : out.writeUInt32BE(value >>> 0, at);
    }
  }
  return out;
};

let ztxtBomb: Buffer | undefined;

/** Big metadata: text, profiles and EXIF from a few KB to 4 MB, or a zTXt that inflates to 64 MB. */
const hugeMetadata: Mutation = (b, r, format) => {
  const size = pick(r, [4 * 1024, 64 * 1024, 1024 * 1024, 4 * 1024 * 1024]);
  const junk = () => Buffer.from(Array.from({ length: Math.min(size, 4096) }, () => int(r, 0, 255))).toString("latin1");
  const filler = (n: number) => Buffer.alloc(n, junk());
  if (format === "png") {
    const chunks = pngChunks(b);
    const idat = chunks.find((c) => c.type === "IDAT");
    if (!idat) return b;
    const kind = pick(r, ["tEXt", "zTXt", "iTXt", "iCCP", "eXIf", "bomb"] as const);
    let chunk: Buffer;
    if (kind === "tEXt") chunk = pngChunk("tEXt", Buffer.concat([Buffer.from("Comment\0"), filler(size)]));
    else if (kind === "iTXt") chunk = pngChunk("iTXt", Buffer.concat([Buffer.from("XML:com.adobe.xmp\0\0\0\0\0"), filler(size)]));
    else if (kind === "eXIf") chunk = pngChunk("eXIf", Buffer.concat([Buffer.from("II*\0\x08\0\0\0", "latin1"), filler(size)]));
    else if (kind === "iCCP") chunk = pngChunk("iCCP", Buffer.concat([Buffer.from("icc\0\0"), deflateSync(filler(size))]));
    else if (kind === "zTXt") chunk = pngChunk("zTXt", Buffer.concat([Buffer.from("Comment\0\0"), deflateSync(filler(size))]));
    else
      chunk = pngChunk("zTXt", Buffer.concat([Buffer.from("Comment\0\0"), (ztxtBomb ??= deflateSync(Buffer.alloc(64 << 20)))]));
    return Buffer.concat([b.subarray(0, idat.at), chunk, b.subarray(idat.at)]);
  }
  if (format === "jpeg") {
    // Many APPn / COM segments (each at most 65533 bytes of payload) right after SOI.
    const segs: Buffer[] = [];
    for (let left = size; left > 0; left -= 65533) {
      const n = Math.min(65533, left);
      const marker = pick(r, [0xe1, 0xe2, 0xed, 0xfe]);
      const head = Buffer.from([0xff, marker, ((n + 2) >> 8) & 0xff, (n + 2) & 0xff]);
      const prefix = marker === 0xe1 ? "Exif\0\0II*\0" : marker === 0xe2 ? "ICC_PROFILE\0\x01\x01" : "";
      const body = Buffer.concat([Buffer.from(prefix, "latin1"), filler(n)]).subarray(0, n);
      segs.push(head, body);
    }
    return Buffer.concat([b.subarray(0, 2), ...segs, b.subarray(2)]);
  }
  if (format === "webp") {
    const kind = pick(r, ["EXIF", "XMP ", "ICCP"] as const);
    const body = filler(size);
    const head = Buffer.alloc(8);
    head.write(kind, 0, "latin1");
    head.writeUInt32LE(body.length, 4);
    const out = Buffer.concat([b, head, body, Buffer.alloc(body.length & 1)]);
    if (r() < 0.7) out.writeUInt32LE(out.length - 8, 4); // RIFF size made to agree, usually
    const vp8x = riffChunks(out).find((c) => c.type === "VP8X");
    if (vp8x) out[vp8x.at + 8]! |= kind === "EXIF" ? 0x08 : kind === "XMP " ? 0x04 : 0x20;
    return out;
  }
  if (format === "gif") {
    // Comment and application extensions: sub-blocks of up to 255 bytes.
    const blocks: Buffer[] = [Buffer.from([0x21, pick(r, [0xfe, 0xff])])];
    for (let left = size; left > 0; left -= 255) {
      const n = Math.min(255, left);
      blocks.push(Buffer.from([n]), filler(n));
    }
    blocks.push(Buffer.from([0]));
    const at = b.indexOf(0x2c, 13);
    return at > 0 ? Buffer.concat([b.subarray(0, at), ...blocks, b.subarray(at)]) : b;
  }
  // TIFF: an ImageDescription-like blob appended, and an entry pointed at it with its real or a lying count.
  const out = Buffer.concat([b, filler(size)]);
  const e = pick(r, tiffEntries(out));
  if (e) {
    const count = r() < 0.5 ? size : 0xffffffff;
    writeU16(out, 2, e.at + 2, e.le); // ASCII
    e.le ? out.writeUInt32LE(count, e.at + 4) : out.writeUInt32BE(count, e.at + 4);
    e.le ? out.writeUInt32LE(b.length, e.at + 8) : out.writeUInt32BE(b.length, e.at + 8);
  }
  return out;
};

/** Structure reshuffled: a chunk or segment duplicated, dropped or moved; the end marker removed; garbage after it. */
const splice: Mutation = (b, r, format) => {
  const spans =
    format === "png"
      ? pngChunks(b).map((c) => ({ at: c.at, end: Math.min(b.length, c.at + 12 + c.length) }))
      : format === "jpeg"
        ? jpegSegments(b).map((s) => ({ at: s.at, end: Math.min(b.length, s.at + 2 + s.length) }))
        : format === "webp"
          ? riffChunks(b).map((c) => ({ at: c.at, end: Math.min(b.length, c.at + 8 + c.length + (c.length & 1)) }))
          : [{ at: 13, end: b.length - 1 }];
  const kind = pick(r, ["duplicate", "drop", "move", "no_end", "trailing"] as const);
  if (kind === "no_end") return b.subarray(0, Math.max(0, b.length - int(r, 1, 12)));
  if (kind === "trailing") return Buffer.concat([b, Buffer.from(Array.from({ length: int(r, 1, 4096) }, () => int(r, 0, 255)))]);
  const s = pick(r, spans);
  if (!s || s.end <= s.at) return b;
  const part = b.subarray(s.at, s.end);
  if (kind === "duplicate") return Buffer.concat([b.subarray(0, s.end), part, b.subarray(s.end)]);
  if (kind === "drop") return Buffer.concat([b.subarray(0, s.at), b.subarray(s.end)]);
  const rest = Buffer.concat([b.subarray(0, s.at), b.subarray(s.end)]);
  const to = int(r, Math.min(8, rest.length), rest.length);
  return Buffer.concat([rest.subarray(0, to), part, rest.subarray(to)]);
};

export const MUTATIONS: Record<string, Mutation> = {
  none: (b) => b,
  dimensions: patchDims,
  truncate,
  bitflip,
  overwrite,
  lying_length: lyingLength,
  huge_metadata: hugeMetadata,
  splice,
  // Two at once: a lie in the header and damage further on.
  dimensions_and_bitflip: (b, r, f) => bitflip(patchDims(b, r, f), r, f),
};

/** Relative frequency of each mutation: the header lies and the damage get most of the corpus. */
const WEIGHTS: [string, number][] = [
  ["none", 3],
  ["dimensions", 22],
  ["truncate", 14],
  ["bitflip", 18],
  ["overwrite", 10],
  ["lying_length", 12],
  ["huge_metadata", 6],
  ["splice", 8],
  ["dimensions_and_bitflip", 7],
];

/** The corpus: `count` cases from `seed`, generated lazily (the 4 MB metadata cases are not all held at once). */
export function* corpus(seeds: Seed[], seed: number, count: number): Generator<FuzzCase> {
  const r = rng(seed);
  const total = WEIGHTS.reduce((n, [, w]) => n + w, 0);
  for (let index = 0; index < count; index++) {
    const s = seeds[index % seeds.length]!;
    let x = r() * total;
    const mutation = WEIGHTS.find(([, w]) => (x -= w) < 0)?.[0] ?? "none";
    const bytes = MUTATIONS[mutation]!(s.bytes, r, s.format);
    yield { index, seed: s.name, format: s.format, mutation, bytes };
  }
}
