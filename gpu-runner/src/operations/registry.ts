import { derainPipeline } from "./derain.ts";
import { faceAnalyzePipeline } from "./face-analyze.ts";
import { inspectPipeline } from "./inspect.ts";
import { lowlightPipeline } from "./lowlight.ts";
import type { OperationPipeline } from "./types.ts";
import { watermarkDecodePipeline, watermarkEmbedPipeline } from "./watermark.ts";

/**
 * Every pipeline this runner can execute, by operation name (the names in contract/operations.ts).
 * Adding an operation is one import and one entry here.
 */
export const PIPELINES: readonly OperationPipeline[] = [
  inspectPipeline,
  watermarkEmbedPipeline,
  watermarkDecodePipeline,
  faceAnalyzePipeline,
  lowlightPipeline,
  derainPipeline,
];

export const REGISTRY: ReadonlyMap<string, OperationPipeline> = new Map(PIPELINES.map((p) => [p.name, p]));

export function pipelineFor(operation: string): OperationPipeline | undefined {
  return REGISTRY.get(operation);
}
