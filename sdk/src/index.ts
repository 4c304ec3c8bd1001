export {
  Vigil,
  OPERATION_METHODS,
  enhanceOperations,
  isTerminal,
  type VigilOptions,
  type CallOptions,
  type JobOptions,
  type WaitOptions,
  type ImageInput,
  type ImageOperationId,
  type EnhanceName,
} from "./client.ts";
export { VigilError, VigilConnectionError, VigilTimeoutError } from "./errors.ts";
export type { RetryOptions } from "./transport.ts";
export {
  verifyWebhook,
  verifyWebhookRequest,
  webhookVerifier,
  WebhookVerificationError,
  type WebhookEvent,
  type JobEvent,
} from "./webhooks.ts";
export { OPERATIONS, type OperationId, type OperationTypes } from "./generated.ts";
export type * from "./generated.ts";
