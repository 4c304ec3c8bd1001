import { ICON_SVG } from "../docs/assets.ts";
import { ApiError } from "../problem.ts";
import { newRouter } from "../router.ts";
import { CONSOLE_CSS, CONSOLE_JS } from "./bundle.gen.ts";

/**
 * The console's page allows its own script, stylesheet and images and talks to its own origin only:
 * - `default-src 'none'`: nothing not named below (frames, fonts, media, workers, manifests, objects);
 * - `script-src 'self'`: the one bundled module below, no inline script, no eval;
 * - `style-src 'self'`: its stylesheet; the before/after slider moves through the CSSOM, which this allows;
 * - `img-src 'self' blob:`: job results (signed /v1/objects URLs on this origin) and the picked photo's preview,
 *   an object URL of the local file;
 * - `connect-src 'self'`: fetch reaches this API only, so a key typed in can go nowhere else;
 * - `require-trusted-types-for 'script'` with no policy: innerHTML and every other string-to-markup sink throws,
 *   so API text can only ever be text (the console builds its DOM node by node);
 * - `base-uri`, `form-action`, `frame-ancestors` as on /docs (they do not fall back to default-src).
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob:",
  "connect-src 'self'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const ICON_NAME = "icon.svg";
const FILES = new Map([
  [CONSOLE_JS.name, { body: CONSOLE_JS.body, type: "text/javascript; charset=utf-8" }],
  [CONSOLE_CSS.name, { body: CONSOLE_CSS.body, type: "text/css; charset=utf-8" }],
  // The icon is /docs' own; its name carries no fingerprint here, so it is not cached as immutable.
  [ICON_NAME, { body: ICON_SVG, type: "image/svg+xml" }],
]);
export const CONSOLE_ASSETS = {
  script: `/console/${CONSOLE_JS.name}`,
  stylesheet: `/console/${CONSOLE_CSS.name}`,
  icon: `/console/${ICON_NAME}`,
};

/** The shell: everything else is built by the script (console/src), which reads the API with the signed-in key. */
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Vigil console</title>
<link rel="icon" href="${CONSOLE_ASSETS.icon}" type="image/svg+xml">
<link rel="stylesheet" href="${CONSOLE_ASSETS.stylesheet}">
<script type="module" src="${CONSOLE_ASSETS.script}"></script>
</head>
<body>
<main id="app"><noscript>The console needs JavaScript. The API reference at <a href="/docs">/docs</a> does not.</noscript></main>
</body>
</html>
`;

const IMMUTABLE = "public, max-age=31536000, immutable";
const PAGE_HEADERS = {
  "content-security-policy": CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // Short: a deploy changes the asset names the page refers to.
  "cache-control": "public, max-age=300",
};

/**
 * GET /console and its assets, public like /docs: the page holds no data, and every API call it makes carries the
 * key the user signs in with. Served by the worker, not Workers static assets, so that one code path sets the CSP
 * and the fingerprinted names for /docs and /console, and the workerd tests see exactly what production serves.
 */
export function consoleRoutes() {
  const app = newRouter();
  app.get("/console", (c) => c.html(PAGE, 200, PAGE_HEADERS));
  app.get("/console/:asset", (c) => {
    const name = c.req.param("asset");
    const file = FILES.get(name);
    if (!file) throw new ApiError(404, "not_found", `no console asset ${name}`);
    return c.body(file.body, 200, {
      "content-type": file.type,
      "cache-control": name === ICON_NAME ? "public, max-age=86400" : IMMUTABLE,
      "x-content-type-options": "nosniff",
    });
  });
  return app;
}
