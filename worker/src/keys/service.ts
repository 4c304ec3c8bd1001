import { sha256Hex, timingSafeEqual, utf8 } from "../../../contract/encoding.ts";
import type { AppEnv, Principal, Scope } from "../env.ts";
import { randomToken } from "../lib/ids.ts";
import { ApiError } from "../problem.ts";

/**
 * Credentials and API key records.
 *
 * Two roles, never mixed:
 * - the platform operator: one bearer token, the worker secret VIGIL_OPERATOR_KEY, held by no tenant key. Tenant
 *   management (/v1/admin/*) and /internal metrics are its alone.
 * - tenants: API keys `vgl_<16 hex key id>_<secret>` (and the local dev key), each with scopes inside its tenant.
 *   The key id is not secret and is the lookup index; only SHA-256(secret) is stored, compared in constant time.
 */

export const DEV_TENANT = "ten_dev";
const TOKEN = /^vgl_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})$/;
/** Shorter operator secrets are refused as not configured: that token opens every tenant. */
export const MIN_OPERATOR_KEY_LENGTH = 24;

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
 * rotated through the API stops working at once in the isolate that served the call (it drops its entry) and
 * within AUTH_CACHE_TTL_MS everywhere else. Unknown key ids are not cached, so bad keys cannot fill it.
 */
export const AUTH_CACHE_TTL_MS = 30_000;
type KeyLookup = ApiKeyRow & { rate_limit_per_minute: number | null; rate_limit_burst: number | null };
type TenantLimits = { rate_limit_per_minute: number | null; rate_limit_burst: number | null };
export const keyCache = new TtlCache<KeyLookup>(AUTH_CACHE_TTL_MS, 1000);
const devTenantCache = new TtlCache<TenantLimits>(AUTH_CACHE_TTL_MS, 1);

/** Drops a key's cached row in this isolate; called after revoking or rotating a key. */
export function forgetApiKey(keyId: string): void {
  keyCache.delete(keyId);
}

function newKeyMaterial(): { idHex: string; secret: string } {
  const idHex = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
  return { idHex, secret: randomToken(32) };
}

async function keyRow(tenantId: string, name: string | null, scopes: Scope[], m: { idHex: string; secret: string }) {
  const row: ApiKeyRow = {
    id: `key_${m.idHex}`,
    tenant_id: tenantId,
    name,
    secret_hash: await sha256Hex(m.secret),
    scopes: JSON.stringify(scopes),
    created_at: Date.now(),
    revoked_at: null,
    expires_at: null,
    replaced_by: null,
    last_used_at: null,
  };
  return { row, token: `vgl_${m.idHex}_${m.secret}` };
}

export async function createApiKey(
  env: AppEnv,
  tenantId: string,
  name: string | null,
  scopes: Scope[],
): Promise<{ row: ApiKeyRow; token: string }> {
  const { row, token } = await keyRow(tenantId, name, scopes, newKeyMaterial());
  await env.DB.prepare("INSERT INTO api_keys (id, tenant_id, name, secret_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?, ?)")
    .bind(row.id, row.tenant_id, row.name, row.secret_hash, row.scopes, row.created_at)
    .run();
  return { row, token };
}

export async function listApiKeys(env: AppEnv, tenantId: string): Promise<ApiKeyRow[]> {
  const { results } = await env.DB.prepare("SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at DESC")
    .bind(tenantId)
    .all<ApiKeyRow>();
  return results;
}

/** A key of this tenant, or 404: another tenant's key id is indistinguishable from a missing one. */
export async function apiKeyOr404(env: AppEnv, tenantId: string, keyId: string): Promise<ApiKeyRow> {
  const k = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ? AND tenant_id = ?")
    .bind(keyId, tenantId)
    .first<ApiKeyRow>();
  if (!k) throw new ApiError(404, "api_key_not_found", "no such API key");
  return k;
}

export async function revokeApiKey(env: AppEnv, tenantId: string, keyId: string): Promise<ApiKeyRow> {
  const key = await apiKeyOr404(env, tenantId, keyId);
  const now = Date.now();
  await env.DB.prepare("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?").bind(now, key.id).run();
  forgetApiKey(key.id);
  return { ...key, revoked_at: key.revoked_at ?? now };
}

/** Why a key cannot be rotated (409), or null when it can: only an active key that was never rotated. */
function notRotatable(k: ApiKeyRow, now: number): ApiError | null {
  if (k.revoked_at !== null) return new ApiError(409, "api_key_revoked", "a revoked key cannot be rotated");
  if (k.expires_at !== null && k.expires_at <= now)
    return new ApiError(409, "api_key_expired", "an expired key cannot be rotated; create a new key instead");
  if (k.replaced_by !== null)
    return new ApiError(409, "api_key_already_rotated", `this key was already rotated (its successor is ${k.replaced_by})`);
  return null;
}

/**
 * Rotation: a successor with the same name and scopes; the old key is revoked now (grace 0) or expires after the
 * grace period. A key is rotated once, while active. Rotating it again used to set a new expiry on it, which
 * brought an expired key back for another grace period (issue 12, defect 3), and gave a key in its grace a second
 * successor. The claim on the old key (`replaced_by`, only where still active and not rotated) and the successor's
 * insert run as one D1 batch, a single transaction: of two concurrent rotations exactly one succeeds.
 */
export async function rotateApiKey(
  env: AppEnv,
  old: ApiKeyRow,
  graceSeconds: number,
): Promise<{ row: ApiKeyRow; token: string }> {
  const now = Date.now();
  const refused = notRotatable(old, now);
  if (refused) throw refused;
  const next = await keyRow(old.tenant_id, old.name, JSON.parse(old.scopes) as Scope[], newKeyMaterial());
  const [claim] = await env.DB.batch([
    env.DB.prepare(
      `UPDATE api_keys SET replaced_by = ?2, expires_at = CASE WHEN ?3 > 0 THEN ?4 + ?3 * 1000 ELSE expires_at END,
         revoked_at = CASE WHEN ?3 > 0 THEN revoked_at ELSE ?4 END
       WHERE id = ?1 AND revoked_at IS NULL AND replaced_by IS NULL AND (expires_at IS NULL OR expires_at > ?4)`,
    ).bind(old.id, next.row.id, graceSeconds, now),
    env.DB.prepare(
      `INSERT INTO api_keys (id, tenant_id, name, secret_hash, scopes, created_at)
       SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ? AND replaced_by = ?)`,
    ).bind(next.row.id, next.row.tenant_id, next.row.name, next.row.secret_hash, next.row.scopes, now, old.id, next.row.id),
  ]);
  forgetApiKey(old.id);
  if (!claim!.meta.changes) {
    // Another rotation or a revocation won the race: answer as if it had come first.
    throw (
      notRotatable(await apiKeyOr404(env, old.tenant_id, old.id), Date.now()) ??
      new ApiError(409, "api_key_already_rotated", "this key was already rotated")
    );
  }
  return { row: { ...next.row, created_at: now }, token: next.token };
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

function bearer(authorization: string | null): string | null {
  return /^Bearer\s+(\S+)$/i.exec(authorization ?? "")?.[1] ?? null;
}

/**
 * Whether the token is the operator credential. Both sides are hashed first, so the comparison takes the same time
 * whatever the lengths and wherever the first difference is.
 */
export async function isOperatorToken(env: AppEnv, token: string): Promise<boolean> {
  const configured = env.VIGIL_OPERATOR_KEY ?? "";
  if (configured.length < MIN_OPERATOR_KEY_LENGTH) return false;
  const [a, b] = await Promise.all([sha256Hex(token), sha256Hex(configured)]);
  return sameString(a, b);
}

/**
 * The operator routes' gate. The operator token passes. A valid tenant key of any scope, the dev key included, is
 * 403 operator_required: it authenticated, it is just not the operator. Anything else is 401, or 503 when no usable
 * operator secret is configured: then no token can pass, and saying so tells the deployer what to fix rather than
 * letting them hunt for a typo in a key that does not exist (it tells an attacker only that there is nothing to
 * guess).
 */
export async function authenticateOperator(env: AppEnv, authorization: string | null): Promise<void> {
  const token = bearer(authorization);
  if (!token) throw unauthorized("unauthorized", "send the operator credential as `Authorization: Bearer vop_...`");
  if (await isOperatorToken(env, token)) return;
  const tenantKey = await authenticate(env, authorization).then(
    () => true,
    () => false,
  );
  if (tenantKey)
    throw new ApiError(
      403,
      "operator_required",
      "this route needs the platform operator's credential; tenant API keys cannot use it",
    );
  if ((env.VIGIL_OPERATOR_KEY ?? "").length < MIN_OPERATOR_KEY_LENGTH)
    throw new ApiError(
      503,
      "operator_not_configured",
      `no operator credential is configured (VIGIL_OPERATOR_KEY, at least ${MIN_OPERATOR_KEY_LENGTH} characters)`,
    );
  throw unauthorized("invalid_operator_key", "the operator credential is not valid");
}

/** Resolves a tenant's bearer token to a principal or throws a 401 ApiError (403 for the operator's token). */
export async function authenticate(env: AppEnv, authorization: string | null): Promise<AuthResult> {
  const token = bearer(authorization);
  if (!token) throw unauthorized("unauthorized", "send an API key as `Authorization: Bearer vgl_...`");
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
      expiresAt: null,
      rateLimit: { perMinute: t?.rate_limit_per_minute ?? null, burst: t?.rate_limit_burst ?? null },
    };
  }
  const parts = TOKEN.exec(token);
  if (!parts) {
    if (await isOperatorToken(env, token))
      throw new ApiError(403, "tenant_key_required", "the operator credential is not a tenant API key; tenant routes need one");
    throw unauthorized("invalid_api_key", "the API key is not valid");
  }
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
    expiresAt: row.expires_at,
    rateLimit: { perMinute: row.rate_limit_per_minute, burst: row.rate_limit_burst },
  };
}

/**
 * `admin` implies every other scope, inside its own tenant. An admin key can mint itself a key of any scope, so
 * refusing it the job routes would only add a round trip, not a boundary; and keys issued as admin-only before
 * this change keep working. The boundary that matters is the tenant: admin reaches nothing outside it.
 */
export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.includes("admin") || p.scopes.includes(scope);
}

export function requireScope(p: Principal | undefined, scope: Scope): Principal {
  if (!p) throw new ApiError(401, "unauthorized", "authentication required");
  if (!hasScope(p, scope)) throw new ApiError(403, "insufficient_scope", `this API key lacks the \`${scope}\` scope`);
  return p;
}

/**
 * The checks before a tenant key mints or rotates keys: the admin scope, and a caller that is not itself being
 * rotated out. A key in its grace period is on its way out; letting it mint a key without an end would let a leaked,
 * already rotated key outlive its rotation.
 *
 * No escalation by scope holds by construction: only admin keys get here, and admin holds every scope (hasScope).
 * auth-roles.test.ts pins that; if admin ever stops implying a scope, this is where a subset check on the granted
 * scopes belongs.
 */
export function requireKeyManager(p: Principal | undefined): Principal {
  const principal = requireScope(p, "admin");
  if (principal.expiresAt !== null)
    throw new ApiError(403, "api_key_superseded", "this API key has been rotated and is in its grace period; use its successor");
  return principal;
}
