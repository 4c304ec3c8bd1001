import { ApiError } from "../problem.ts";
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

/** The page's subresources by file name (content fingerprint in it), each with its body and type. */
const FILES = new Map([
  [`reference.${fingerprint(STYLESHEET)}.css`, { body: STYLESHEET, type: "text/css; charset=utf-8" }],
  [`icon.${fingerprint(ICON_SVG)}.svg`, { body: ICON_SVG, type: "image/svg+xml" }],
]);
const [stylesheet, icon] = [...FILES.keys()].map((name) => `/docs/${name}`);
export const DOCS_ASSETS = { stylesheet: stylesheet!, icon: icon! };

const IMMUTABLE = "public, max-age=31536000, immutable";

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
  docs.get("/docs/:asset", (c) => {
    const file = FILES.get(c.req.param("asset"));
    if (!file) throw new ApiError(404, "not_found", `no docs asset ${c.req.param("asset")}`);
    return c.body(file.body, 200, {
      "content-type": file.type,
      "cache-control": IMMUTABLE,
      "x-content-type-options": "nosniff",
    });
  });
  return docs;
}
