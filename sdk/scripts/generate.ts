/**
 * Writes sdk/src/generated.ts from the API's OpenAPI document: a TypeScript type per component schema, one row per
 * operation (method, path, parameters, body kind, security) and each operation's parameter, body and response
 * types. The SDK's methods are written against these, so a route that changes shape fails the typecheck.
 *
 *   npm run generate -w sdk -- http://127.0.0.1:8787/openapi.json   (or a path to a saved document)
 *
 * test/sdk/generated.test.ts regenerates from the document the local stack serves and fails when the committed
 * file differs.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { format, resolveConfig } from "prettier";

type Schema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  allOf?: Schema[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  format?: string;
  description?: string;
  default?: unknown;
};
interface Parameter {
  $ref?: string;
  name: string;
  in: "query" | "path" | "header" | "cookie";
  required?: boolean;
  description?: string;
  schema?: Schema;
}
interface MediaType {
  schema?: Schema;
}
interface Operation {
  operationId: string;
  summary?: string;
  deprecated?: boolean;
  security?: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, MediaType> };
  responses?: Record<string, { $ref?: string; content?: Record<string, MediaType> }>;
}
export interface OpenApiDocument {
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Schema>; parameters?: Record<string, Parameter> };
}

const METHODS = ["get", "put", "post", "delete", "patch"] as const;
/** Headers the client sets itself on every call that takes them; they are options, not operation parameters. */
const CLIENT_HEADERS = new Set(["idempotency-key", "prefer", "x-request-id"]);

const refName = (ref: string) => ref.slice(ref.lastIndexOf("/") + 1);
const key = (name: string) => (/^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name));
const doc = (text?: string, indent = "") =>
  text ? `${indent}/** ${text.replace(/\*\//g, "*\\/").replace(/\s+/g, " ")} */\n` : "";

/** A TypeScript type for a JSON Schema (the subset OpenAPI 3.1 documents from zod use). */
export function tsType(s: Schema | undefined): string {
  if (!s) return "unknown";
  if (s.$ref) return refName(s.$ref);
  if (s.allOf) return s.allOf.map((x) => wrap(tsType(x))).join(" & ");
  const alts = s.anyOf ?? s.oneOf;
  if (alts) return [...new Set(alts.map(tsType))].join(" | ");
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (types.length === 0) return s.properties ? objectType(s) : "unknown";
  return types.map((t) => single(t, s)).join(" | ");
}

const wrap = (t: string) => (t.includes("|") ? `(${t})` : t);

function single(t: string, s: Schema): string {
  switch (t) {
    case "string":
      return s.format === "binary" ? "Blob" : "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array":
      return `Array<${tsType(s.items)}>`;
    case "object":
      return objectType(s);
    default:
      return "unknown";
  }
}

function objectType(s: Schema): string {
  const props = Object.entries(s.properties ?? {});
  const extra = s.additionalProperties;
  const index = extra === undefined || extra === false ? "" : `[key: string]: ${extra === true ? "unknown" : tsType(extra)};`;
  if (props.length === 0) return index ? `{ ${index} }` : "Record<string, never>";
  const required = new Set(s.required ?? []);
  const fields = props.map(([name, p]) => `${doc(p.description)}${key(name)}${required.has(name) ? "" : "?"}: ${tsType(p)};`);
  return `{\n${fields.join("\n")}\n${index}}`;
}

/** How an operation takes its input: an image (raw bytes, multipart or an upload reference), JSON, or nothing. */
function bodyKind(op: Operation): "image" | "json" | "none" {
  const content = op.requestBody?.content ?? {};
  if (Object.keys(content).some((t) => t.startsWith("image/"))) return "image";
  return content["application/json"] ? "json" : "none";
}

function resolveParam(p: Parameter, d: OpenApiDocument): Parameter {
  return p.$ref ? d.components!.parameters![refName(p.$ref)]! : p;
}

function paramsType(params: Parameter[]): string {
  if (params.length === 0) return "Record<string, never>";
  const fields = params.map((p) => `${doc(p.description)}${key(p.name)}${p.required ? "" : "?"}: ${tsType(p.schema)};`);
  return `{\n${fields.join("\n")}\n}`;
}

function responseType(op: Operation): string {
  const types = Object.entries(op.responses ?? {})
    .filter(([status]) => /^2\d\d$/.test(status))
    .map(([, r]) => tsType(r.content?.["application/json"]?.schema ?? { type: "null" }));
  return [...new Set(types)].join(" | ") || "null";
}

/** The generated module's source, formatted with the repository's prettier settings. */
export async function generate(d: OpenApiDocument): Promise<string> {
  const out: string[] = [
    "// Generated by sdk/scripts/generate.ts from the Vigil OpenAPI document. Do not edit: run `npm run generate -w sdk`.",
    `// Document: ${d.info.title} ${d.info.version}.`,
    "",
  ];
  for (const [name, schema] of Object.entries(d.components?.schemas ?? {})) {
    out.push(`${doc(schema.description)}export type ${name} = ${tsType(schema)};`, "");
  }
  const rows: string[] = [];
  const types: string[] = [];
  for (const [path, item] of Object.entries(d.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const params = (op.parameters ?? []).map((p) => resolveParam(p, d)).filter((p) => !CLIENT_HEADERS.has(p.name));
      const pathParams = params.filter((p) => p.in === "path");
      const query = params.filter((p) => p.in === "query");
      const kind = bodyKind(op);
      const schemes = [...new Set((op.security ?? []).flatMap((s) => Object.keys(s)))];
      const headers = new Set((op.parameters ?? []).map((p) => resolveParam(p, d).name));
      rows.push(
        `${doc(op.summary)}${op.operationId}: { method: ${JSON.stringify(method.toUpperCase())}, path: ${JSON.stringify(path)}, ` +
          `pathParams: ${JSON.stringify(pathParams.map((p) => p.name))}, query: ${JSON.stringify(query.map((p) => p.name))}, ` +
          `body: ${JSON.stringify(kind)}, auth: ${JSON.stringify(schemes[0] ?? "none")}, ` +
          `idempotent: ${headers.has("idempotency-key")}, wait: ${headers.has("prefer")}, deprecated: ${op.deprecated === true} },`,
      );
      const body = kind === "json" ? tsType(op.requestBody!.content!["application/json"]!.schema) : "never";
      types.push(
        `${op.operationId}: {\npath: ${paramsType(pathParams)};\nquery: ${paramsType(query)};\nbody: ${body};\nresponse: ${responseType(op)};\n};`,
      );
    }
  }
  out.push(
    "/** Every operation of the document by operationId: how to call it. */",
    `export const OPERATIONS = {\n${rows.join("\n")}\n} as const;`,
    "",
    "export type OperationId = keyof typeof OPERATIONS;",
    "",
    "/** Per operation: path parameters, query parameters (an image operation's params), JSON body and 2xx response. */",
    `export interface OperationTypes {\n${types.join("\n")}\n}`,
    "",
  );
  const target = fileURLToPath(new URL("../src/generated.ts", import.meta.url));
  return format(out.join("\n"), { ...(await resolveConfig(target)), parser: "typescript" });
}

export const GENERATED_PATH = fileURLToPath(new URL("../src/generated.ts", import.meta.url));

async function load(from: string): Promise<OpenApiDocument> {
  if (/^https?:/.test(from)) {
    const res = await fetch(from);
    if (!res.ok) throw new Error(`GET ${from}: HTTP ${res.status}`);
    return (await res.json()) as OpenApiDocument;
  }
  return JSON.parse(readFileSync(from, "utf8")) as OpenApiDocument;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const from = process.argv[2] ?? `${process.env.VIGIL_API_URL ?? "http://127.0.0.1:8787"}/openapi.json`;
  writeFileSync(GENERATED_PATH, await generate(await load(from)));
  console.log(`wrote ${GENERATED_PATH} from ${from}`);
}
