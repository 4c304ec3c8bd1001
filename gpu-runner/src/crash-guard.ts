import { AsyncLocalStorage } from "node:async_hooks";
import { RunnerError } from "./errors.ts";
import type { Logger } from "./log.ts";

/**
 * A job's async context, so that an error that escapes the pipeline's promise chain (a floating promise that
 * rejects, a thenable that drops its rejection as face-api's tasks do) can still be traced to the job it came
 * from. Node runs `unhandledRejection` and `uncaughtException` handlers in the async context of the promise or
 * callback that failed, so AsyncLocalStorage finds the job there (checked on Node 20: a floating rejection, a
 * rejection dropped by a thenable and a throw in a timer all carried their job's store).
 */
interface JobScope {
  operation: string;
  jobId?: string;
  open: boolean;
  escape(reason: unknown): void;
}

const scopes = new AsyncLocalStorage<JobScope>();

/** Exit status after an exception that escaped to the top level (EX_SOFTWARE). */
export const CRASH_EXIT_CODE = 70;

/**
 * Runs `fn` as one job's work. With the crash guard installed, an unhandled rejection raised inside it while it
 * runs makes the returned promise reject with `pipeline_error`, so the job fails with a stable code and the
 * runner keeps serving, even if `fn` itself never settles.
 */
export function runInJobScope<T>(info: { operation: string; jobId?: string }, fn: () => Promise<T>): Promise<T> {
  let escape!: (reason: unknown) => void;
  const escaped = new Promise<never>((_, reject) => (escape = reject));
  const scope: JobScope = {
    ...info,
    open: true,
    escape: (reason) =>
      escape(new RunnerError("pipeline_error", `${info.operation}: an error escaped the pipeline: ${describe(reason)}`)),
  };
  return Promise.race([scopes.run(scope, fn), escaped]).finally(() => {
    scope.open = false;
  });
}

export function describe(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  try {
    return `non-Error thrown: ${typeof e === "string" ? e : (JSON.stringify(e) ?? String(e))}`;
  } catch {
    return `non-Error thrown: ${String(e)}`;
  }
}

function fields(reason: unknown, scope: JobScope | undefined): Record<string, unknown> {
  return {
    ...(scope ? { job_id: scope.jobId ?? null, operation: scope.operation } : {}),
    error: describe(reason),
    stack: reason instanceof Error ? reason.stack : undefined,
  };
}

/**
 * The runner service's last-resort handlers (installed once by `serve`):
 * - an unhandled rejection inside a running job fails that job (runInJobScope) and the runner goes on: the
 *   failure was confined to one job's promise chain, nothing else is left half-done;
 * - one from a job that has already ended is logged and ignored, for the same reason;
 * - anything else (a rejection outside any job, any uncaught exception) leaves the process in a state nobody
 *   knows: it is logged, with the job if one is known, and the process exits with CRASH_EXIT_CODE so that the
 *   supervisor restarts it. Its leases expire and the worker re-queues those jobs (or fails them with
 *   runner_crashed after their attempts).
 * Returns a function that removes the handlers (tests).
 */
export function installCrashGuard(log: Logger, exit: (code: number) => void = (code) => process.exit(code)): () => void {
  const onRejection = (reason: unknown) => {
    const scope = scopes.getStore();
    if (scope?.open) {
      log("error", "unhandled rejection inside a job; failing the job", fields(reason, scope));
      scope.escape(reason);
      return;
    }
    if (scope) {
      log("warn", "unhandled rejection from a job that has ended; ignored", fields(reason, scope));
      return;
    }
    log("error", "unhandled rejection outside any job; exiting for the supervisor to restart", fields(reason, scope));
    exit(CRASH_EXIT_CODE);
  };
  const onException = (err: unknown, origin: string) => {
    const scope = scopes.getStore();
    log("error", "uncaught exception; exiting for the supervisor to restart", { ...fields(err, scope), origin });
    exit(CRASH_EXIT_CODE);
  };
  process.on("unhandledRejection", onRejection);
  process.on("uncaughtException", onException);
  return () => {
    process.removeListener("unhandledRejection", onRejection);
    process.removeListener("uncaughtException", onException);
  };
}
