import { DurableObject } from "cloudflare:workers";
import type { AppEnv } from "../env.ts";

export interface TakeResult {
  allowed: boolean;
  /** Whole seconds until one token is available again (0 when allowed). */
  retryAfter: number;
  remaining: number;
}

/**
 * Token bucket, one instance per tenant (idFromName(tenant)). The bucket lives in memory with a copy in
 * SQLite so that an evicted instance does not hand a tenant a fresh burst.
 */
export class RateLimiter extends DurableObject<AppEnv> {
  private tokens: number | null = null;
  private updatedAt = 0;

  constructor(ctx: DurableObjectState, env: AppEnv) {
    super(ctx, env);
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS bucket (id INTEGER PRIMARY KEY CHECK (id = 1), tokens REAL, updated_at INTEGER)",
    );
    const row = ctx.storage.sql.exec("SELECT tokens, updated_at FROM bucket WHERE id = 1").toArray()[0];
    if (row) {
      this.tokens = row.tokens as number;
      this.updatedAt = row.updated_at as number;
    }
  }

  take(perMinute: number, burst: number, cost = 1): TakeResult {
    const now = Date.now();
    const rate = perMinute / 60_000;
    const current = this.tokens === null ? burst : Math.min(burst, this.tokens + (now - this.updatedAt) * rate);
    const allowed = current >= cost;
    this.tokens = allowed ? current - cost : current;
    this.updatedAt = now;
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO bucket (id, tokens, updated_at) VALUES (1, ?, ?)", this.tokens, now);
    const retryAfter = allowed ? 0 : Math.max(1, Math.ceil((cost - this.tokens) / rate / 1000));
    return { allowed, retryAfter, remaining: Math.floor(this.tokens) };
  }
}
