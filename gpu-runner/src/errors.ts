/**
 * Every failure a job can report has a stable `code` (it becomes the API's error type) and says whether
 * another attempt could succeed: a bad image never will, a flaky download might.
 */
export class RunnerError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable = false,
  ) {
    super(message);
    this.name = "RunnerError";
  }
}

/** The worker answered 409: our lease is gone (expired and re-leased, or the job was canceled). */
export class LeaseLostError extends Error {
  constructor(message = "lease lost") {
    super(message);
    this.name = "LeaseLostError";
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
