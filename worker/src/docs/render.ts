import { html, inlineText, Safe } from "./html.ts";
import { operationsOf, type OpenApiDocument } from "./openapi.ts";

/**
 * The API reference as one static HTML page, rendered from the same document /openapi.json serves: operations
 * grouped by tag, each with its parameters, request bodies, responses and errors, then the shared schemas and
 * error responses. No script: every operation is a <details> element and the table of contents is anchors, so
 * the page needs nothing but its stylesheet and works with scripts off.
 */

interface Schema {
  $ref?: string;
  type?: string | string[];
  format?: string;
  enum?: unknown[];
  const?: unknown;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema | boolean;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  description?: string;
  default?: unknown;
  example?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
}
interface Parameter {
  $ref?: string;
  name: string;
  in: string;
  required?: boolean;
  description?: string;
  deprecated?: boolean;
  schema?: Schema;
}
interface MediaTypes {
  [contentType: string]: { schema?: Schema };
}
interface Response {
  $ref?: string;
  description?: string;
  headers?: Record<string, { description?: string; schema?: Schema }>;
  content?: MediaTypes;
}
interface Operation {
  operationId?: string;
  summary?: string;
  description?: string;
  tags?: string[];
  deprecated?: boolean;
  security?: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: { required?: boolean; description?: string; content?: MediaTypes };
  responses?: Record<string, Response>;
}
interface Entry {
  method: string;
  path: string;
  op: Operation;
}

/** Nested objects are expanded this deep; below it a property shows its type only (no schema here goes deeper). */
const MAX_DEPTH = 4;

const refName = (ref: string) => ref.slice(ref.lastIndexOf("/") + 1);
const slug = (s: string) => s.replace(/[^A-Za-z0-9_-]+/g, "-");
const schemaAnchor = (name: string) => `schema-${slug(name)}`;
const json = (v: unknown) => JSON.stringify(v);

function typeLabel(s: Schema | undefined): Safe {
  if (!s) return html`any`;
  if (s.$ref) return html`<a href="#${schemaAnchor(refName(s.$ref))}">${refName(s.$ref)}</a>`;
  if (s.const !== undefined) return html`<code>${json(s.const)}</code>`;
  if (s.enum) return html`${s.enum.map((v, i) => html`${i ? " | " : ""}<code>${json(v)}</code>`)}`;
  for (const [key, sep] of [
    ["anyOf", " | "],
    ["oneOf", " | "],
    ["allOf", " & "],
  ] as const) {
    const list = s[key];
    if (list) return html`${list.map((x, i) => html`${i ? sep : ""}${typeLabel(x)}`)}`;
  }
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  const labels = types.map((t) => {
    if (t === "array") return html`${typeLabel(s.items)}[]`;
    if (t === "object" && !s.properties && s.additionalProperties && typeof s.additionalProperties === "object")
      return html`map of ${Object.keys(s.additionalProperties).length ? typeLabel(s.additionalProperties) : "any"}`;
    // The format belongs to the value's type, not to the null of a nullable one.
    return html`${t}${s.format && t !== "null" ? html` <span class="fmt">(${s.format})</span>` : ""}`;
  });
  return labels.length ? html`${labels.map((l, i) => html`${i ? " | " : ""}${l}`)}` : html`any`;
}

function constraints(s: Schema | undefined): Safe {
  if (!s) return html``;
  const facts: string[] = [];
  if (s.minimum !== undefined) facts.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) facts.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) facts.push(`≤ ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) facts.push(`< ${s.exclusiveMaximum}`);
  if (s.minLength !== undefined) facts.push(`min length ${s.minLength}`);
  if (s.maxLength !== undefined) facts.push(`max length ${s.maxLength}`);
  if (s.minItems !== undefined) facts.push(`min items ${s.minItems}`);
  if (s.maxItems !== undefined) facts.push(`max items ${s.maxItems}`);
  if (s.pattern !== undefined) facts.push(`pattern ${s.pattern}`);
  if (s.default !== undefined) facts.push(`default ${json(s.default)}`);
  if (s.example !== undefined) facts.push(`example ${json(s.example)}`);
  return facts.length ? html`<span class="facts">${facts.join(" · ")}</span>` : html``;
}

/** The object behind a schema that has named properties (directly or as the array's items), to expand inline. */
function expandable(s: Schema | undefined): Schema | undefined {
  if (!s) return undefined;
  if (s.properties) return s;
  if (s.items?.properties) return s.items;
  return undefined;
}

function propertiesTable(s: Schema, depth: number): Safe {
  const required = new Set(s.required ?? []);
  const rows = Object.entries(s.properties ?? {}).map(([name, p]) => {
    const nested = depth < MAX_DEPTH ? expandable(p) : undefined;
    return html`<tr>
      <td><code>${name}</code>${required.has(name) ? html` <span class="req">required</span>` : ""}</td>
      <td class="type">${typeLabel(p)}</td>
      <td>${inlineText(p.description)} ${constraints(p)}${nested ? propertiesTable(nested, depth + 1) : ""}</td>
    </tr>`;
  });
  return html`<table class="props">
    <tbody>
      ${rows}
    </tbody>
  </table>`;
}

/** A body's schema: a named component is linked, anything else expanded in place. */
function schemaBlock(s: Schema | undefined): Safe {
  if (!s) return html``;
  const inline = s.$ref ? undefined : expandable(s);
  return html`<div class="schema">
    <span class="type">${typeLabel(s)}</span> ${inlineText(s.description)} ${constraints(s)}
    ${inline ? propertiesTable(inline, 1) : ""}
  </div>`;
}

function mediaTypes(content: MediaTypes | undefined): Safe {
  return html`${Object.entries(content ?? {}).map(
    ([type, media]) => html`<div class="media"><span class="ctype">${type}</span>${schemaBlock(media.schema)}</div>`,
  )}`;
}

function parametersTable(params: Parameter[]): Safe {
  return html`<h4>Parameters</h4>
    <table class="params">
      <thead>
        <tr>
          <th>name</th>
          <th>in</th>
          <th>type</th>
          <th>description</th>
        </tr>
      </thead>
      <tbody>
        ${params.map(
          (p) =>
            html`<tr>
              <td><code>${p.name}</code>${p.required ? html` <span class="req">required</span>` : ""}</td>
              <td>${p.in}</td>
              <td class="type">${typeLabel(p.schema)}</td>
              <td>${inlineText(p.description ?? p.schema?.description)} ${constraints(p.schema)}</td>
            </tr>`,
        )}
      </tbody>
    </table>`;
}

function responsesList(doc: OpenApiDocument, responses: Record<string, Response>): Safe {
  const shared = (doc.components?.responses ?? {}) as Record<string, Response>;
  const rows = Object.entries(responses).map(([status, r]) => {
    const name = r.$ref ? refName(r.$ref) : undefined;
    const resolved = name ? (shared[name] ?? {}) : r;
    const error = /^[45]/.test(status);
    return html`<li class="${error ? "error" : "success"}">
      <span class="status">${status}</span>
      ${name ? html`<a href="#response-${slug(name)}">${name}</a>: ` : ""}${inlineText(resolved.description)}
      ${error ? "" : mediaTypes(resolved.content)}
    </li>`;
  });
  return html`<h4>Responses</h4>
    <ul class="responses">
      ${rows}
    </ul>`;
}

function operationBlock(doc: OpenApiDocument, { method, path, op }: Entry): Safe {
  const id = op.operationId ?? `${method}-${path}`;
  const schemes = [...new Set((op.security ?? []).flatMap((s) => Object.keys(s)))];
  const shared = (doc.components?.parameters ?? {}) as Record<string, Parameter>;
  const params = (op.parameters ?? []).map((p) => (p.$ref ? (shared[refName(p.$ref)] ?? p) : p));
  return html`<details class="operation" id="op-${slug(id)}">
    <summary>
      <span class="method ${method}">${method.toUpperCase()}</span>
      <code class="path">${path}</code>
      <span class="summary">${op.summary ?? ""}</span>
      ${op.deprecated ? html`<span class="deprecated">deprecated</span>` : ""}
    </summary>
    <div class="body">
      <p class="meta">
        operationId <code>${id}</code>${
          schemes.length
            ? html` · auth ${schemes.map((s, i) => html`${i ? ", " : ""}<a href="#auth-${slug(s)}">${s}</a>`)}`
            : " · no auth"
        }
      </p>
      ${op.description ? html`<p>${inlineText(op.description)}</p>` : ""} ${params.length ? parametersTable(params) : ""}
      ${
        op.requestBody
          ? html`<h4>Request body${op.requestBody.required ? html` <span class="req">required</span>` : ""}</h4>
              ${op.requestBody.description ? html`<p>${inlineText(op.requestBody.description)}</p>` : ""}
              ${mediaTypes(op.requestBody.content)}`
          : ""
      }
      ${responsesList(doc, op.responses ?? {})}
    </div>
  </details>`;
}

/** Operations by tag, tags in the order they first appear (the order the routes are mounted). */
function byTag(doc: OpenApiDocument): Map<string, Entry[]> {
  const groups = new Map<string, Entry[]>();
  for (const entry of operationsOf<Operation>(doc)) {
    const tag = entry.op.tags?.[0] ?? "Other";
    groups.set(tag, [...(groups.get(tag) ?? []), entry]);
  }
  return groups;
}

/** `assets` are the same-origin URLs of the stylesheet and the icon (the page's only subresources). */
export function renderReference(doc: OpenApiDocument, assets: { stylesheet: string; icon: string }): string {
  const groups = byTag(doc);
  const tagInfo = new Map((doc.tags ?? []).map((t) => [t.name, t.description]));
  const schemas = Object.entries((doc.components?.schemas ?? {}) as Record<string, Schema>);
  const responses = Object.entries((doc.components?.responses ?? {}) as Record<string, Response>);
  const security = Object.entries(
    (doc.components?.securitySchemes ?? {}) as Record<string, { type: string; scheme?: string; description?: string }>,
  );
  const webhooks = Object.entries((doc.webhooks ?? {}) as Record<string, Record<string, Operation>>);
  const license = doc.info.license;
  const page = html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${doc.info.title} reference</title>
        <link rel="stylesheet" href="${assets.stylesheet}" />
        <link rel="icon" href="${assets.icon}" type="image/svg+xml" />
      </head>
      <body>
        <nav>
          <a class="home" href="#top">${doc.info.title}</a>
          <ul>
            <li><a href="#auth">Authentication</a></li>
            ${[...groups].map(
              ([tag, ops]) =>
                html`<li>
                  <a href="#tag-${slug(tag)}">${tag}</a>
                  <ul>
                    ${ops.map(
                      (e) =>
                        html`<li>
                          <a href="#op-${slug(e.op.operationId ?? "")}"
                            ><span class="method ${e.method}">${e.method.toUpperCase()}</span> ${e.path}</a
                          >
                        </li>`,
                    )}
                  </ul>
                </li>`,
            )}
            ${webhooks.length ? html`<li><a href="#webhooks">Webhooks</a></li>` : ""}
            <li><a href="#errors">Errors</a></li>
            <li><a href="#schemas">Schemas</a></li>
          </ul>
        </nav>
        <main id="top">
          <header>
            <h1>${doc.info.title} <span class="version">${doc.info.version}</span></h1>
            <p>${inlineText(doc.info.description)}</p>
            <p class="meta">
              OpenAPI ${doc.openapi} · <a href="/openapi.json">/openapi.json</a>${
                license ? html` · license ${license.url ? html`<a href="${license.url}">${license.name}</a>` : license.name}` : ""
              }
            </p>
          </header>
          <section id="auth">
            <h2>Authentication</h2>
            <dl>
              ${security.map(
                ([name, s]) =>
                  html`<dt id="auth-${slug(name)}"><code>${name}</code> · ${s.type} ${s.scheme ?? ""}</dt>
                    <dd>${inlineText(s.description)}</dd>`,
              )}
            </dl>
          </section>
          ${[...groups].map(
            ([tag, ops]) =>
              html`<section id="tag-${slug(tag)}">
                <h2>${tag}</h2>
                ${tagInfo.get(tag) ? html`<p>${inlineText(tagInfo.get(tag))}</p>` : ""} ${ops.map((e) => operationBlock(doc, e))}
              </section>`,
          )}
          ${
            webhooks.length
              ? html`<section id="webhooks">
                  <h2>Webhooks</h2>
                  ${webhooks.flatMap(([name, item]) =>
                    Object.entries(item).map(([method, op]) => operationBlock(doc, { method, path: name, op })),
                  )}
                </section>`
              : ""
          }
          <section id="errors">
            <h2>Errors</h2>
            <p>
              Every error is an RFC 9457 problem (<code>application/problem+json</code>, schema
              <a href="#${schemaAnchor("Problem")}">Problem</a>) whose <code>type</code> ends in a stable code. These responses
              are shared by many operations:
            </p>
            <dl>
              ${responses.map(
                ([name, r]) =>
                  html`<dt id="response-${slug(name)}"><code>${name}</code></dt>
                    <dd>${inlineText(r.description)}</dd>`,
              )}
            </dl>
          </section>
          <section id="schemas">
            <h2>Schemas</h2>
            ${schemas.map(
              ([name, s]) =>
                html`<div class="component" id="${schemaAnchor(name)}">
                  <h3>${name}</h3>
                  ${schemaBlock(s)}
                </div>`,
            )}
          </section>
        </main>
      </body>
    </html>`;
  // The templates' indentation was 18 % of the page (122 KB, 100 KB without); a newline keeps the whitespace that
  // separates words.
  return page.value.replace(/\n\s+/g, "\n");
}
