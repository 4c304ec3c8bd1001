import type { Context } from "hono";
import { endTime, startTime } from "hono/timing";
import type { HonoEnv } from "../env.ts";

/**
 * Times `fn` as one `Server-Timing` entry. Route groups mounted without the timing middleware (tests mount
 * them bare) just run `fn`, instead of hono/timing logging a warning on every request.
 */
export async function timed<T>(c: Context<HonoEnv>, name: string, fn: () => Promise<T>): Promise<T> {
  if (!c.get("metric")) return fn();
  startTime(c, name);
  try {
    return await fn();
  } finally {
    endTime(c, name);
  }
}
