import { sha256Hex, timingSafeEqual, utf8 } from "../../../contract/encoding.ts";
import type { AppEnv, Principal, Scope } from "../env.ts";
import { ApiError } from "../problem.ts";
import { randomToken } from "./ids.ts";

/**
 * API keys look like `vgl_<16 hex key id>_<secret>`. The key id is not secret and is the lookup index;
 * only SHA-256(secret) is stored, compared in constant time.
 */

export const DEV_TENANT = "ten_dev";
const TOKEN = /^vgl_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})$/;

export interface ApiKeyRow {
  id: string;
  tenant_id: string;
  name: string | null;
  secret_hash: string;
  scopes: string;
  created_at: number;
  revoked_at: number | null;
  expires_at: number | null;
  replaced_by: string | null;
  last_used_at: number | null;
}

export interface PublicApiKey {
  id: string;
  object: "api_key";
  tenant_id: string;
  name: string | null;
  scopes: Scope[];
  created_at: string;
  revoked_at: string | null;
  expires_at: string | null;
  replaced_by: string | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function publicKey(row: ApiKeyRow): PublicApiKey {
  return {
    id: row.id,
    object: "api_key",
    tenant_id: row.tenant_id,
    name: row.name,
    scopes: JSON.parse(row.scopes) as Scope[],
    created_at: iso(row.created_at)!,
    revoked_at: iso(row.revoked_at),
    expires_at: iso(row.expires_at),
    replaced_by: row.replaced_by,
  };
}

/**
 * A small TTL map, evicting the oldest entry when full. Per isolate: nothing is shared between isolates or
 * colos, which is why the TTL bounds how stale an entry may be.
 */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();

  constructor(
    readonly ttlMs: number,
    readonly maxEntries: number,
    private readonly now: () => number = () => Date.now(),
  ) {}

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V): void {
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { value, expiresAt: this.now() + this.ttlMs });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}

/**
 * Every authenticated request used to read its key (and the tenant's rate limits) from D1: 4-6 ms of each request
 * measured on the local stack, and a D1 round trip in production too. Lookups are cached per isolate for
 * AUTH_CACHE_TTL_MS. What is cached is the D1 row, so the secret is still hashed and compared in constant time on
 * every request, and revocation and expiry are still checked against it. Revocation latency: a key revoked or
 * rotated through the admin API stops working at once in the isolate that served the admin call (it drops its
 * entry) and within AUTH_CACHE_TTL_MS everywhere else. Unknown key ids are not cached, so bad keys cannot fill it.
 */
export const AUTH_CACHE_TTL_MS = 30_000;
type KeyLookup = ApiKeyRow & { rate_limit_per_minute: number | null; rate_limit_burst: number | null };
type TenantLimits = { rate_limit_per_minute: number | null; rate_limit_burst: number | null };
export const keyCache = new TtlCache<KeyLookup>(AUTH_CACHE_TTL_MS, 1000);
const devTenantCache = new TtlCache<TenantLimits>(AUTH_CACHE_TTL_MS, 1);

/** Drops a key's cached row in this isolate; the admin routes call it after revoking or rotating a key. */
export function forgetApiKey(keyId: string): void {
  keyCache.delete(keyId);
}

export async function createApiKey(
  env: AppEnv,
  tenantId: string,
  name: string | null,
  scopes: Scope[],
): Promise<{ row: ApiKeyRow; token: string }> {
  const idHex = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
  const secret = randomToken(32);
  const row: ApiKeyRow = {
    id: `key_${idHex}`,
    tenant_id: tenantId,
    name,
    secret_hash: await sha256Hex(secret),
    scopes: JSON.stringify(scopes),
    created_at: Date.now(),
    revoked_at: null,
    expires_at: null,
    replaced_by: null,
    last_used_at: null,
  };
  await env.DB.prepare("INSERT INTO api_keys (id, tenant_id, name, secret_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?, ?)")
    .bind(row.id, row.tenant_id, row.name, row.secret_hash, row.scopes, row.created_at)
    .run();
  return { row, token: `vgl_${idHex}_${secret}` };
}

export interface AuthResult extends Principal {
  rateLimit: { perMinute: number | null; burst: number | null };
}

function unauthorized(code: string, detail: string): ApiError {
  return new ApiError(401, code, detail, { headers: { "www-authenticate": 'Bearer realm="vigil"' } });
}

function sameString(a: string, b: string): boolean {
  return timingSafeEqual(utf8(a), utf8(b));
}

/** Resolves a bearer token to a principal or throws a 401 ApiError. */
export async function authenticate(env: AppEnv, authorization: string | null): Promise<AuthResult> {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? "");
  if (!m) throw unauthorized("unauthorized", "send an API key as `Authorization: Bearer vgl_...`");
  const token = m[1]!;
  if (env.VIGIL_DEV_KEY && sameString(token, env.VIGIL_DEV_KEY)) {
    let t = devTenantCache.get(DEV_TENANT) ?? null;
    if (!t) {
      t = await env.DB.prepare("SELECT rate_limit_per_minute, rate_limit_burst FROM tenants WHERE id = ?")
        .bind(DEV_TENANT)
        .first<TenantLimits>();
      if (t) devTenantCache.set(DEV_TENANT, t);
    }
    if (!t) {
      // Created lazily on first use; reading first keeps the common path free of D1 writes.
      await env.DB.prepare("INSERT OR IGNORE INTO tenants (id, name, created_at) VALUES (?, 'Development', ?)")
        .bind(DEV_TENANT, Date.now())
        .run();
      t = { rate_limit_per_minute: null, rate_limit_burst: null };
    }
    return {
      tenantId: DEV_TENANT,
      keyId: "dev",
      scopes: ["admin", "protect", "verify", "restore", "inspect"],
      rateLimit: { perMinute: t?.rate_limit_per_minute ?? null, burst: t?.rate_limit_burst ?? null },
    };
  }
  const parts = TOKEN.exec(token);
  if (!parts) throw unauthorized("invalid_api_key", "the API key is not valid");
  const keyId = `key_${parts[1]}`;
  let row = keyCache.get(keyId) ?? null;
  if (!row) {
    row = await env.DB.prepare(
      `SELECT k.*, t.rate_limit_per_minute, t.rate_limit_burst FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = ?`,
    )
      .bind(keyId)
      .first<KeyLookup>();
    if (row) keyCache.set(keyId, row);
  }
  // Hash even when the id is unknown, so timing does not reveal which key ids exist.
  const hash = await sha256Hex(parts[2]!);
  if (!row || !sameString(hash, row.secret_hash)) throw unauthorized("invalid_api_key", "the API key is not valid");
  if (row.revoked_at !== null) throw unauthorized("api_key_revoked", "the API key has been revoked");
  if (row.expires_at !== null && row.expires_at <= Date.now())
    throw unauthorized("api_key_expired", "the API key has expired (rotated)");
  return {
    tenantId: row.tenant_id,
    keyId: row.id,
    scopes: JSON.parse(row.scopes) as Scope[],
    rateLimit: { perMinute: row.rate_limit_per_minute, burst: row.rate_limit_burst },
  };
}

export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.includes("admin") || p.scopes.includes(scope);
}

export function requireScope(p: Principal | undefined, scope: Scope): Principal {
  if (!p) throw new ApiError(401, "unauthorized", "authentication required");
  if (!hasScope(p, scope)) throw new ApiError(403, "insufficient_scope", `this API key lacks the \`${scope}\` scope`);
  return p;
}
