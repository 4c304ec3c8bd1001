import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";
import { LocalStack, type StackOptions } from "../../scripts/local-stack.ts";

/** A throwaway local stack on its own port and state directory. */
export async function startTestStack(
  opts: Partial<StackOptions> & { port: number },
): Promise<{ stack: LocalStack; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-e2e-"));
  const stack = new LocalStack({ persistTo: join(dir, "state"), envFile: join(dir, "dev.vars"), runners: 1, ...opts });
  try {
    await stack.start();
  } catch (e) {
    console.error(stack.wranglerOutput.join("").slice(-4000));
    for (const r of stack.runners) console.error(r.output.join("").slice(-4000));
    console.error(stack.supervisorLog.join("\n"));
    await stack.stop();
    throw e;
  }
  return {
    stack,
    cleanup: async () => {
      await stack.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ReceivedEvent {
  id: string;
  type: string;
  payload: any;
}

/**
 * A local webhook endpoint that only accepts deliveries whose Standard Webhooks signature verifies. Every verified
 * delivery is kept in `events`, re-deliveries included (same `id`, the webhook-id); `byJob` indexes them by the
 * job they are about (`data.job.id`).
 */
export class WebhookReceiver {
  readonly events: ReceivedEvent[] = [];
  readonly byJob = new Map<string, ReceivedEvent[]>();
  rejected = 0;
  private server?: Server;
  private secret = "";
  private waiters: Array<() => void> = [];

  setSecret(secret: string) {
    this.secret = secret;
  }

  async listen(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        try {
          const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
          const payload = new Webhook(this.secret).verify(body, headers) as any;
          const event = { id: headers["webhook-id"]!, type: payload.type, payload };
          this.events.push(event);
          const jobId = payload?.data?.job?.id;
          if (typeof jobId === "string") this.byJob.set(jobId, [...(this.byJob.get(jobId) ?? []), event]);
          res.writeHead(204).end();
          this.waiters.splice(0).forEach((w) => w());
        } catch {
          this.rejected++;
          res.writeHead(400).end();
        }
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    const addr = this.server.address();
    if (!addr || typeof addr === "string") throw new Error("no address");
    return `http://127.0.0.1:${addr.port}/hooks`;
  }

  async waitFor(pred: (e: ReceivedEvent) => boolean, timeoutMs = 30_000): Promise<ReceivedEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.find(pred);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`webhook not received in ${timeoutMs} ms (got ${this.events.map((e) => e.type).join(", ")})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 500));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Distinct events (by webhook-id) received about a job, of one type when given. */
  eventIdsFor(jobId: string, type?: string): Set<string> {
    return new Set((this.byJob.get(jobId) ?? []).filter((e) => !type || e.type === type).map((e) => e.id));
  }

  close() {
    this.server?.close();
  }
}

export function api(stack: LocalStack, key = stack.vars.VIGIL_DEV_KEY!) {
  return async (path: string, init: RequestInit & { json?: unknown } = {}) => {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${key}`);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(init.json);
    }
    const res = await fetch(stack.url + path, { ...init, headers, body });
    const text = await res.text();
    let data: any = text;
    try {
      data = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, headers: res.headers, data };
  };
}

export async function pollJob(call: ReturnType<typeof api>, id: string, pred: (job: any) => boolean, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { data } = await call(`/v1/jobs/${id}`);
    if (pred(data)) return data;
    if (Date.now() > deadline) throw new Error(`job ${id} stuck: ${JSON.stringify(data)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
