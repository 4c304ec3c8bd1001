import type { Context } from "hono";
import type { HonoEnv } from "../env.ts";
import { newRouter } from "../router.ts";
import { ICON_SVG, STYLESHEET } from "./assets.ts";
import type { OpenApiDocument } from "./openapi.ts";
import { renderReference } from "./render.ts";

/**
 * The page loads only its own stylesheet and icon, so everything else is refused:
 * - `default-src 'none'`: no script of any kind (script-src falls back to it: no inline, no eval, not even 'self'),
 *   no fetch/XHR, frame, font, media, worker or manifest;
 * - `style-src 'self'` and `img-src 'self'`: the stylesheet and the icon below, nothing inline;
 * - `base-uri 'none'` and `form-action 'none'`: a <base> or <form> in the markup could not redirect anything (the
 *   two directives that do not fall back to default-src);
 * - `frame-ancestors 'none'`: the page cannot be framed (clickjacking).
 */
export const DOCS_CSP =
  "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** FNV-1a, 32 bits: a content fingerprint for the asset URLs, so they can be cached for good and still change. */
function fingerprint(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}

export const DOCS_ASSETS = {
  stylesheet: `/docs/reference.${fingerprint(STYLESHEET)}.css`,
  icon: `/docs/icon.${fingerprint(ICON_SVG)}.svg`,
};

const IMMUTABLE = "public, max-age=31536000, immutable";

function asset(c: Context<HonoEnv>, body: string, type: string): Response {
  return c.body(body, 200, { "content-type": type, "cache-control": IMMUTABLE, "x-content-type-options": "nosniff" });
}

/**
 * GET /docs: the API reference, rendered in the worker from the served OpenAPI document (render.ts), and its
 * assets. `document` is the same memoised getter /openapi.json serves, so the page and the document cannot
 * disagree.
 */
export function docsRoutes(document: () => OpenApiDocument) {
  const docs = newRouter();
  let page: string | undefined;
  docs.get("/docs", (c) =>
    c.html((page ??= renderReference(document(), DOCS_ASSETS)), 200, {
      "content-security-policy": DOCS_CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      // Short: a deploy changes the page, and the asset URLs it names change with it.
      "cache-control": "public, max-age=300",
    }),
  );
  docs.get(DOCS_ASSETS.stylesheet, (c) => asset(c, STYLESHEET, "text/css; charset=utf-8"));
  docs.get(DOCS_ASSETS.icon, (c) => asset(c, ICON_SVG, "image/svg+xml"));
  return docs;
}
