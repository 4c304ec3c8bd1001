import { hex, timingSafeEqual, utf8 } from "../../../contract/encoding.ts";
import type { AppEnv } from "../env.ts";

/**
 * Signed, expiring object URLs. The default signer is the worker itself (`/v1/objects/<key>` with an
 * HMAC over method, key and expiry). With R2's S3 credentials configured, URLs are S3 presigned URLs
 * instead, so bytes go straight to R2. Both sit behind this interface.
 */
export interface ObjectUrlSigner {
  sign(method: "GET" | "PUT", key: string, expiresAt: number): Promise<string>;
}

export const OBJECTS_PATH = "/v1/objects/";

async function hmac(secret: string, text: string): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", utf8(secret) as BufferSource, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8(text) as BufferSource));
}

function stringToSign(method: string, key: string, expiresAt: number): string {
  return `${method.toUpperCase()}\n${key}\n${expiresAt}`;
}

function encodeKey(key: string): string {
  return key.split("/").map(encodeURIComponent).join("/");
}

export class WorkerObjectUrlSigner implements ObjectUrlSigner {
  constructor(
    private readonly origin: string,
    private readonly secret: string,
  ) {}

  async sign(method: "GET" | "PUT", key: string, expiresAt: number): Promise<string> {
    const sig = hex(await hmac(this.secret, stringToSign(method, key, expiresAt)));
    return `${this.origin}${OBJECTS_PATH}${encodeKey(key)}?expires=${expiresAt}&sig=${sig}`;
  }
}

export type UrlCheck = { ok: true } | { ok: false; code: "signature_invalid" | "url_expired" };

/** Verifies a worker-signed URL; the signature is checked before the expiry so that forged URLs learn nothing. */
export async function verifyObjectUrl(
  secret: string,
  method: string,
  key: string,
  expires: string | null,
  sig: string | null,
  nowSeconds = Math.floor(Date.now() / 1000),
): Promise<UrlCheck> {
  if (!expires || !sig || !/^\d+$/.test(expires) || !/^[0-9a-f]{64}$/.test(sig)) return { ok: false, code: "signature_invalid" };
  const expected = await hmac(secret, stringToSign(method, key, Number(expires)));
  const given = Uint8Array.from(sig.match(/../g)!.map((h) => parseInt(h, 16)));
  if (!timingSafeEqual(expected, given)) return { ok: false, code: "signature_invalid" };
  if (Number(expires) <= nowSeconds) return { ok: false, code: "url_expired" };
  return { ok: true };
}

class S3ObjectUrlSigner implements ObjectUrlSigner {
  constructor(private readonly env: AppEnv) {}

  async sign(method: "GET" | "PUT", key: string, expiresAt: number): Promise<string> {
    // Lazy: the AWS SDK is large and only needed when S3 credentials are configured.
    const [{ S3Client, GetObjectCommand, PutObjectCommand }, { getSignedUrl }] = await Promise.all([
      import("@aws-sdk/client-s3"),
      import("@aws-sdk/s3-request-presigner"),
    ]);
    const client = new S3Client({
      region: "auto",
      endpoint: this.env.R2_S3_ENDPOINT,
      credentials: { accessKeyId: this.env.R2_ACCESS_KEY_ID!, secretAccessKey: this.env.R2_SECRET_ACCESS_KEY! },
      requestChecksumCalculation: "WHEN_REQUIRED",
    });
    const input = { Bucket: this.env.R2_BUCKET!, Key: key };
    const command = method === "GET" ? new GetObjectCommand(input) : new PutObjectCommand(input);
    const expiresIn = Math.max(1, expiresAt - Math.floor(Date.now() / 1000));
    return getSignedUrl(client, command, { expiresIn });
  }
}

export function objectUrlSigner(env: AppEnv, origin: string): ObjectUrlSigner {
  if (env.R2_S3_ENDPOINT && env.R2_ACCESS_KEY_ID && env.R2_SECRET_ACCESS_KEY && env.R2_BUCKET) return new S3ObjectUrlSigner(env);
  if (!env.OBJECT_URL_SECRET) throw new Error("OBJECT_URL_SECRET is not configured");
  return new WorkerObjectUrlSigner(origin, env.OBJECT_URL_SECRET);
}

/** Object keys are per tenant; nothing outside these prefixes is ever signed. */
export const objectKeys = {
  jobPrefix: (tenant: string, job: string) => `tenants/${tenant}/jobs/${job}/`,
  input: (tenant: string, job: string, i: number) => `tenants/${tenant}/jobs/${job}/inputs/${i}`,
  output: (tenant: string, job: string, name: string) => `tenants/${tenant}/jobs/${job}/outputs/${name}`,
  upload: (tenant: string, upload: string) => `tenants/${tenant}/uploads/${upload}`,
};

export function isSafeKey(key: string): boolean {
  return (
    /^tenants\/[A-Za-z0-9_-]+\/[A-Za-z0-9_./-]+$/.test(key) && !key.split("/").some((p) => p === ".." || p === "." || p === "")
  );
}
