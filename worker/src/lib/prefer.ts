/** The longest `Prefer: wait` a request may ask for, in seconds. */
export const MAX_WAIT_SECONDS = 60;

/** `Prefer: wait=N` (RFC 7240), capped at MAX_WAIT_SECONDS; 0 when absent. */
export function preferWait(c: { req: { header(name: string): string | undefined } }): number {
  const m = /(?:^|[,;\s])wait=(\d+)/.exec(c.req.header("prefer") ?? "");
  return m ? Math.min(Number(m[1]), MAX_WAIT_SECONDS) : 0;
}
