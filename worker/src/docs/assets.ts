/**
 * The reference page's two subresources, served by the worker itself (no CDN, nothing to pin but this file).
 * Plain CSS: light and dark follow the reader's system setting.
 */
export const STYLESHEET = `
:root { color-scheme: light dark; --fg: #1d2330; --muted: #5b6474; --bg: #fff; --panel: #f5f7fa; --line: #dde2ea;
  --accent: #2957c4; --get: #1f7a4d; --post: #2957c4; --delete: #b3261e; --put: #8a5a00; --patch: #8a5a00; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e9ef; --muted: #9aa3b2; --bg: #14171d; --panel: #1c2029; --line: #2d3340; --accent: #8fb0ff;
    --get: #5fd19b; --post: #8fb0ff; --delete: #ff8a80; --put: #ffc46b; --patch: #ffc46b; }
}
* { box-sizing: border-box; }
body { margin: 0; display: flex; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code { font: 0.9em ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
nav { position: sticky; top: 0; height: 100vh; overflow-y: auto; width: 21rem; flex: none; padding: 1rem;
  border-right: 1px solid var(--line); background: var(--panel); font-size: 13px; }
nav ul { list-style: none; margin: 0; padding: 0; }
nav ul ul { margin: 0.2rem 0 0.6rem 0.4rem; }
nav li { margin: 0.15rem 0; }
nav .home { display: block; font-weight: 600; font-size: 16px; margin-bottom: 0.8rem; }
nav .method { display: inline-block; width: 3.6em; }
nav a { overflow-wrap: anywhere; }
main { flex: 1; min-width: 0; max-width: 64rem; padding: 1rem 2rem 4rem; }
h1 .version { font-size: 0.5em; color: var(--muted); font-weight: 400; }
h2 { margin-top: 2.5rem; border-bottom: 1px solid var(--line); padding-bottom: 0.3rem; }
h4 { margin: 1rem 0 0.3rem; }
.meta, .facts, .fmt { color: var(--muted); font-size: 0.9em; }
.operation { border: 1px solid var(--line); border-radius: 6px; margin: 0.5rem 0; background: var(--bg); }
.operation > summary { cursor: pointer; padding: 0.5rem 0.8rem; display: flex; gap: 0.8rem; align-items: baseline;
  flex-wrap: wrap; }
.operation[open] > summary { border-bottom: 1px solid var(--line); background: var(--panel); }
.operation .body { padding: 0.3rem 1rem 1rem; }
.method { font: 600 12px ui-monospace, Menlo, Consolas, monospace; }
.method.get { color: var(--get); } .method.post { color: var(--post); } .method.delete { color: var(--delete); }
.method.put { color: var(--put); } .method.patch { color: var(--patch); }
.path { font-weight: 600; }
.summary { color: var(--muted); }
.deprecated { font-size: 12px; border: 1px solid var(--delete); color: var(--delete); border-radius: 4px;
  padding: 0 0.3rem; }
.req { font-size: 11px; color: var(--delete); }
table { border-collapse: collapse; width: 100%; margin: 0.3rem 0; font-size: 14px; }
th, td { text-align: left; vertical-align: top; padding: 0.3rem 0.5rem; border-top: 1px solid var(--line); }
th { color: var(--muted); font-weight: 500; }
td.type { white-space: nowrap; }
table.props table.props { margin-top: 0.4rem; font-size: 13px; }
.media { margin: 0.4rem 0; }
.ctype { font: 12px ui-monospace, Menlo, Consolas, monospace; background: var(--panel); border: 1px solid var(--line);
  border-radius: 4px; padding: 0 0.3rem; }
.schema { margin: 0.3rem 0 0.3rem 0.2rem; }
.responses { list-style: none; padding: 0; margin: 0; }
.responses li { padding: 0.3rem 0; border-top: 1px solid var(--line); }
.status { display: inline-block; width: 3em; font: 600 13px ui-monospace, Menlo, Consolas, monospace; }
.responses .success .status { color: var(--get); } .responses .error .status { color: var(--delete); }
dt { margin-top: 0.6rem; font-weight: 600; }
dd { margin: 0.2rem 0 0 1rem; }
.component { margin: 1rem 0; }
@media (max-width: 800px) { body { display: block; } nav { position: static; height: auto; width: auto; } main { padding: 1rem; } }
`;

/** A 16 px mark for the tab, so the browser's implicit /favicon.ico request (a 404) is not made. */
export const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2957c4"/><path d="M4 4l4 8 4-8" fill="none" stroke="#fff" stroke-width="2"/></svg>`;
