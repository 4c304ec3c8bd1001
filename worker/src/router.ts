import { OpenAPIHono } from "@hono/zod-openapi";
import type { HonoEnv } from "./env.ts";
import { ApiError, zodFieldErrors } from "./problem.ts";

/** A route group whose zod-validated inputs fail as 422 problems, the same as hand-validated ones. */
export function newRouter(): OpenAPIHono<HonoEnv> {
  return new OpenAPIHono<HonoEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        throw new ApiError(422, "validation_failed", `the request ${result.target} is not valid`, {
          errors: zodFieldErrors(result.error.issues, result.target === "json" ? "" : result.target),
        });
      }
    },
  });
}
