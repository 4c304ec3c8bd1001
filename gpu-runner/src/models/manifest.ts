import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { RunnerError } from "../errors.ts";

export const ManifestModel = z
  .object({
    id: z.string().min(1),
    version: z.string().min(1),
    /** Relative to the models directory. */
    file: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    inputs: z.array(z.unknown()).optional(),
    outputs: z.array(z.unknown()).optional(),
    working_size: z.unknown().optional(),
  })
  .passthrough();
export type ManifestModel = z.infer<typeof ManifestModel>;

export const Manifest = z.object({ version: z.number().int(), models: z.array(ManifestModel) });
export type Manifest = z.infer<typeof Manifest>;

export async function loadManifest(modelsDir: string): Promise<Manifest> {
  const path = join(modelsDir, "manifest.json");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new RunnerError("model_unavailable", `cannot read ${path}: ${(e as Error).message}`, true);
  }
  const parsed = Manifest.safeParse(JSON.parse(text));
  if (!parsed.success) throw new RunnerError("model_unavailable", `${path} does not match the manifest schema`, true);
  return parsed.data;
}
