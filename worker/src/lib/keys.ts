/**
 * API keys moved to the keys feature folder (worker/src/keys/service.ts). This module re-exports what routes outside
 * that folder still import from here (jobs.ts, identity/routes.ts); import from keys/service.ts in new code.
 */
export { hasScope, requireScope } from "../keys/service.ts";
