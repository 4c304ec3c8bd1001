import { getOperation, type OperationSpec } from "./operations.ts";

/** The part of an operation's limits that is about the image's shape (contract/operations.ts explains each value). */
export type GeometryLimits = Pick<OperationSpec["limits"], "min_side" | "max_aspect_ratio">;

export const GEOMETRY_ERROR_CODES = ["image_too_small", "unsupported_aspect_ratio"] as const;

export interface GeometryProblem {
  code: (typeof GEOMETRY_ERROR_CODES)[number];
  message: string;
}

/**
 * Why an image of width x height does not fit `limits`, or null when it does. Shared by the worker (at job
 * creation, from the header bytes) and the runner (after decoding), so both refuse the same images with the same
 * codes. Orientation-free: min side and aspect ratio are the same with width and height swapped.
 */
export function geometryProblem(limits: GeometryLimits, width: number, height: number, what: string): GeometryProblem | null {
  const [short, long] = width < height ? [width, height] : [height, width];
  if (short < limits.min_side)
    return {
      code: "image_too_small",
      message: `${what} needs at least ${limits.min_side} px on the shorter side; the image is ${width}x${height}`,
    };
  if (long > short * limits.max_aspect_ratio)
    return {
      code: "unsupported_aspect_ratio",
      message: `${what} accepts aspect ratios up to ${limits.max_aspect_ratio}:1; the image is ${width}x${height} (${(long / short).toFixed(1)}:1)`,
    };
  return null;
}

/** The limits that admit only what every one of these operations admits (a flow's stages all run on one image). */
export function strictestGeometry(operations: readonly string[]): GeometryLimits {
  const specs = operations.map((name) => {
    const spec = getOperation(name);
    if (!spec) throw new Error(`unknown operation ${name}`);
    return spec.limits;
  });
  return {
    min_side: Math.max(...specs.map((l) => l.min_side)),
    max_aspect_ratio: Math.min(...specs.map((l) => l.max_aspect_ratio)),
  };
}
