-- The event body a delivery sends, kept so that a delivery whose queue message was lost (a worker crash with
-- messages in flight) can be sent again by the stalled-delivery sweep (worker/src/lib/webhooks.ts).
ALTER TABLE webhook_deliveries ADD COLUMN event TEXT;
