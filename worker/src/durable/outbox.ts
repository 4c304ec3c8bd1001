import type { AppEnv } from "../env.ts";
import { newId } from "../lib/ids.ts";
import { publicJob } from "../lib/job-view.ts";
import type { JobRecord } from "./job-queue.ts";

/**
 * A transactional outbox for webhook events, kept in the JobQueue Durable Object's SQLite.
 *
 * An event is written in the same transaction as the state change that causes it (JobQueue.finish), so a crash
 * can delay an event but never drop it. After the commit the row is sent to WEBHOOK_QUEUE; it stays in the
 * outbox until the queue consumer has fanned it out to the tenant's endpoints and calls confirm(). Until then
 * the DO's alarm sends it again every CONFIRM_TIMEOUT_MS (backing off to MAX_RETRY_MS). Marking a row "sent"
 * on a successful send() would not be enough locally: miniflare keeps queued messages in memory, so a worker
 * killed with messages in the queue loses them (8 of 40 job.succeeded events in the hardening probe).
 *
 * Delivery is at least once: a re-sent event keeps its id (the webhook-id header) and its body, and the fan-out
 * creates one delivery per (endpoint, event), so receivers de-duplicate on webhook-id.
 */

export interface WebhookEvent {
  id: string;
  type: string;
  created_at: string;
  data: Record<string, unknown>;
}

/** What an outbox row holds until its event body is built: a job snapshot, or the data of a plain event. */
type Source = { job: JobRecord } | { data: Record<string, unknown> };

/** Wait this long for the consumer's confirmation before sending an event again. */
export const CONFIRM_TIMEOUT_MS = 30_000;
/** The longest gap between two sends of an unconfirmed event. */
const MAX_RETRY_MS = 3_600_000;
/** Rows sent per flush; the alarm picks up the rest. */
const FLUSH_BATCH = 100;

export function retryDelayMs(sends: number): number {
  return Math.min(MAX_RETRY_MS, CONFIRM_TIMEOUT_MS * 2 ** Math.max(0, sends - 1));
}

export class Outbox {
  constructor(
    private readonly sql: SqlStorage,
    private readonly env: AppEnv,
  ) {
    sql.exec(`
      CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, tenant_id TEXT NOT NULL, type TEXT NOT NULL,
        created_at INTEGER NOT NULL, source TEXT NOT NULL, event TEXT, sends INTEGER NOT NULL DEFAULT 0,
        next_send_at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_send_at);
    `);
  }

  /** Records an event. Call inside the transaction of the change it reports; flush() after the commit. */
  add(tenantId: string, type: string, source: Source): string {
    const id = newId("evt");
    const now = Date.now();
    this.sql.exec(
      "INSERT INTO outbox (id, tenant_id, type, created_at, source, next_send_at) VALUES (?, ?, ?, ?, ?, ?)",
      id,
      tenantId,
      type,
      now,
      JSON.stringify(source),
      now,
    );
    return id;
  }

  /**
   * Sends every due row. Each row is claimed (its next send moved to the confirmation deadline) before the
   * first await, so two overlapping flushes in this object do not send it twice.
   */
  async flush(): Promise<number> {
    const now = Date.now();
    const due = this.sql.exec("SELECT * FROM outbox WHERE next_send_at <= ? ORDER BY seq LIMIT ?", now, FLUSH_BATCH).toArray();
    for (const row of due) {
      this.sql.exec(
        "UPDATE outbox SET sends = sends + 1, next_send_at = ? WHERE id = ?",
        now + retryDelayMs((row.sends as number) + 1),
        row.id,
      );
    }
    let sent = 0;
    for (const row of due) {
      try {
        const event = row.event ? (JSON.parse(row.event as string) as WebhookEvent) : await this.build(row);
        await this.env.WEBHOOK_QUEUE.send({ kind: "event", tenant_id: row.tenant_id as string, event });
        sent++;
      } catch (e) {
        // The claim above already set the retry time; the alarm tries again then.
        console.error(JSON.stringify({ msg: "outbox_send_failed", event: row.id, error: String(e) }));
      }
    }
    return sent;
  }

  /**
   * The event body, built once and stored, so that every re-send carries the same body under the same id.
   * Job events carry the job as clients see it (signed output URLs minted now, valid for DOWNLOAD_URL_SECONDS).
   */
  private async build(row: Record<string, SqlStorageValue>): Promise<WebhookEvent> {
    const source = JSON.parse(row.source as string) as Source;
    const data = "job" in source ? { job: await publicJob(this.env, source.job) } : source.data;
    const event: WebhookEvent = {
      id: row.id as string,
      type: row.type as string,
      created_at: new Date(row.created_at as number).toISOString(),
      data,
    };
    this.sql.exec("UPDATE outbox SET event = ? WHERE id = ? AND event IS NULL", JSON.stringify(event), row.id);
    return event;
  }

  /** The consumer fanned the event out: it is done here. Returns whether the row was still pending. */
  confirm(eventId: string): boolean {
    return this.sql.exec("DELETE FROM outbox WHERE id = ?", eventId).rowsWritten > 0;
  }

  /** When the alarm must next run for this outbox, or null when it is empty. */
  nextSendAt(): number | null {
    return this.sql.exec("SELECT MIN(next_send_at) AS t FROM outbox").one().t as number | null;
  }

  pending(): number {
    return this.sql.exec("SELECT COUNT(*) AS n FROM outbox").one().n as number;
  }
}
