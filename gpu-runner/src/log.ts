/** One JSON object per line on stderr, so stdout stays clean for `exec` results. */
export type LogLevel = "debug" | "info" | "warn" | "error";

export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

export const log: Logger = (level, msg, fields = {}) => {
  if (level === "debug" && !process.env.VIGIL_DEBUG) return;
  process.stderr.write(JSON.stringify({ t: new Date().toISOString(), level, msg, ...fields }) + "\n");
};
