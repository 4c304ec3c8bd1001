import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";

export const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
export const PHOTO = join(ROOT, "test/fixtures/photo.jpg");
export const TINY_MODEL = join(ROOT, "test/runner/fixtures/tiny-invert.onnx");
const SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data";

export function photoBytes(): Buffer {
  return readFileSync(PHOTO);
}

/** A second real photo (scikit-image's chelsea) when present; otherwise a synthetic, structurally different image. */
export async function otherPhotoBytes(): Promise<Buffer> {
  const chelsea = join(SKIMAGE, "chelsea.png");
  if (existsSync(chelsea)) return readFileSync(chelsea);
  return gradientPng(300, 200, 3);
}

/** Smooth diagonal gradient with a bright disc: non-trivial structure, fully deterministic. */
export async function gradientRaw(width: number, height: number, channels: 3 | 4): Promise<Buffer> {
  const buf = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * channels;
      const inDisc = (x - width * 0.65) ** 2 + (y - height * 0.4) ** 2 < (Math.min(width, height) * 0.2) ** 2;
      buf[i] = inDisc ? 240 : Math.round((255 * x) / width);
      buf[i + 1] = inDisc ? 230 : Math.round((255 * y) / height);
      buf[i + 2] = inDisc ? 40 : 128;
      if (channels === 4) buf[i + 3] = Math.round((255 * (x + y)) / (width + height));
    }
  }
  return buf;
}

export async function gradientPng(width: number, height: number, channels: 3 | 4): Promise<Buffer> {
  return sharp(await gradientRaw(width, height, channels), { raw: { width, height, channels } })
    .png()
    .toBuffer();
}

/** An animated GIF, one solid frame per colour (sharp joins the frames; its types do not model create-inputs in arrays). */
export async function animatedGif(width: number, height: number, colours: string[]): Promise<Buffer> {
  const frames = colours.map((background) => ({ create: { width, height, channels: 3 as const, background } }));
  return sharp(frames as unknown as Parameters<typeof sharp>[0], { join: { animated: true } })
    .gif()
    .toBuffer();
}
