import {
  ApiError,
  TERMINAL,
  type Api,
  type Job,
  type OpenApiDocument,
  type OpenApiOperation,
  type OpenApiParameter,
  type Verification,
} from "./api.ts";
import { fill, h } from "./dom.ts";
import { beforeAfter } from "./slider.ts";
import { verdictView } from "./verdict.ts";

/** An operation that takes an image body: every job-creating route of the document (inspect, protect, verify, enhance/*). */
export interface Runnable {
  id: string;
  path: string;
  label: string;
  summary: string;
  params: OpenApiParameter[];
}

/** The runnable operations, read from the served OpenAPI document so the form follows the API. */
export function runnableOperations(doc: OpenApiDocument): Runnable[] {
  const out: Runnable[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    const op: OpenApiOperation | undefined = item.post;
    if (!op?.requestBody?.content || !Object.keys(op.requestBody.content).some((t) => t.startsWith("image/"))) continue;
    const params = (op.parameters ?? []).filter((p): p is OpenApiParameter => "name" in p && p.in === "query");
    out.push({ id: op.operationId, path, label: path.replace(/^\/v1\//, ""), summary: op.summary ?? "", params });
  }
  return out;
}

const isBooleanParam = (p: OpenApiParameter) =>
  typeof p.schema?.default === "boolean" || p.schema?.type === "boolean" || !!p.schema?.anyOf?.some((s) => s.type === "boolean");
const isNumberParam = (p: OpenApiParameter) => {
  const t = p.schema?.type;
  return t === "number" || t === "integer" || (Array.isArray(t) && (t.includes("number") || t.includes("integer")));
};

/** One form control per query parameter, typed from its schema; `read()` gives the values that differ from the defaults. */
function paramField(p: OpenApiParameter): { el: HTMLElement; read(): string | undefined } {
  const s = p.schema ?? {};
  const id = `param-${p.name}`;
  const hint = p.description ?? "";
  if (s.enum) {
    const select = h(
      "select",
      { id, name: p.name },
      ...s.enum.map((v) => h("option", { value: String(v), selected: v === s.default }, String(v))),
    );
    return {
      el: h("label", { title: hint }, p.name, select),
      read: () => (select.value === String(s.default) ? undefined : select.value),
    };
  }
  if (isBooleanParam(p)) {
    const box = h("input", { id, name: p.name, type: "checkbox", checked: s.default === true });
    return {
      el: h("label", { class: "check", title: hint }, box, p.name),
      read: () => (box.checked === (s.default === true) ? undefined : String(box.checked)),
    };
  }
  const input = h("input", {
    id,
    name: p.name,
    type: isNumberParam(p) ? "number" : "text",
    step: isNumberParam(p) ? "any" : undefined,
    min: s.minimum,
    max: s.maximum,
    maxlength: s.maxLength,
    placeholder: s.default === null || s.default === undefined ? "" : String(s.default),
  });
  return {
    el: h("label", { title: hint }, p.name, input),
    read: () => (input.value.trim() === "" ? undefined : input.value.trim()),
  };
}

/** A refusal as the API explained it (status, stable code, detail, field errors), or any other failure as text. */
export function problemView(e: unknown): HTMLElement {
  if (e instanceof ApiError) {
    return h(
      "div",
      { class: "problem", role: "alert", "data-code": e.code },
      h("strong", {}, `${e.problem.status} ${e.code}`),
      ": ",
      e.problem.detail ?? e.problem.title,
      e.problem.errors?.length
        ? h("ul", {}, ...e.problem.errors.map((x) => h("li", {}, h("code", {}, x.path), " ", x.message)))
        : null,
    );
  }
  return h("div", { class: "problem", role: "alert" }, String(e instanceof Error ? e.message : e));
}

/** A job's page: status and stages while it runs; then its verdict, images or facts, and the raw JSON. */
export function jobView(job: Job, before?: string): HTMLElement {
  const out = job.output ?? {};
  const images = Object.entries(out).filter(([k, v]) => k.endsWith("_url") && typeof v === "string") as [string, string][];
  const main = images.find(([k]) => k === "image_url")?.[1];
  const facts = Object.entries(out).filter(([k, v]) => !k.endsWith("_url") && (v === null || typeof v !== "object"));
  const verification = job.operation === "verify" && job.status === "succeeded" ? (out as unknown as Verification) : null;
  return h(
    "article",
    { class: "job", "data-job": job.id, "data-status": job.status },
    h(
      "header",
      {},
      h("h2", {}, job.operation),
      h("code", { class: "job-id" }, job.id),
      h("span", { class: `status s-${job.status}`, "data-status": job.status }, job.status),
    ),
    job.stages.length
      ? h(
          "ol",
          { class: "stages" },
          ...job.stages.map((s) =>
            h("li", {}, h("code", {}, s.name), " ", h("span", { class: `status s-${s.status}` }, s.status)),
          ),
        )
      : null,
    job.error
      ? h(
          "div",
          { class: "problem", role: "alert", "data-code": job.error.type },
          h("strong", {}, job.error.type),
          ": ",
          job.error.message,
        )
      : null,
    verification
      ? h(
          "div",
          { class: "checked" },
          before
            ? h(
                "figure",
                { class: "input" },
                h("img", { src: before, alt: "the checked image" }),
                h("figcaption", {}, "checked image"),
              )
            : null,
          verdictView(verification),
        )
      : null,
    main
      ? before
        ? beforeAfter(before, main, ["original", job.operation === "protect" ? "watermarked" : "result"])
        : h("img", { class: "result", src: main, alt: "result" })
      : null,
    main
      ? h("p", {}, h("a", { href: main, download: `${job.id}.${String(job.params.format ?? "png")}` }, "Download the result"))
      : null,
    ...images
      .filter(([k]) => k !== "image_url")
      .map(([k, url]) =>
        h("figure", { class: "artifact" }, h("img", { src: url, alt: k }), h("figcaption", {}, k.replace(/_url$/, ""))),
      ),
    !verification && facts.length
      ? h(
          "table",
          { class: "facts" },
          h("tbody", {}, ...facts.map(([k, v]) => h("tr", { "data-field": k }, h("th", {}, k), h("td", {}, String(v))))),
        )
      : null,
    h("details", { class: "raw" }, h("summary", {}, "JSON"), h("pre", {}, JSON.stringify(job, null, 2))),
  );
}

/**
 * Shows job `id` in `result` and polls it until it ends, redrawing on every change of status or stages. Only the
 * job opened last owns `result`: a job still followed from an earlier click stops when another is opened.
 */
export async function follow(api: Api, id: string, result: HTMLElement, before?: string, everyMs = 400): Promise<void> {
  result.dataset.following = id;
  let last = "";
  while (result.dataset.following === id) {
    const job = await api<Job>("GET", `/v1/jobs/${id}`);
    if (result.dataset.following !== id) return;
    const key = job.status + job.stages.map((s) => s.status).join();
    if (key !== last) fill(result, jobView(job, before));
    last = key;
    if (TERMINAL.includes(job.status)) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The run view: operation, its params, a dropped or picked photo, and the job it started. */
export function runView(api: Api, ops: Runnable[], onJob: () => void): HTMLElement {
  const result = h("div", { id: "result", "aria-live": "polite" });
  const paramsBox = h("div", { class: "params" });
  let fields: { name: string; read(): string | undefined }[] = [];
  let file: File | undefined;
  let preview: string | undefined;

  const select = h(
    "select",
    { id: "operation", name: "operation" },
    ...ops.map((o) => h("option", { value: o.id, selected: o.label === "protect" }, o.label)),
  );
  const summary = h("p", { class: "muted op-summary" });
  const chosen = () => ops.find((o) => o.id === select.value) ?? ops[0]!;
  const showParams = () => {
    const op = chosen();
    summary.textContent = op.summary;
    const made = op.params.map((p) => ({ name: p.name, ...paramField(p) }));
    fields = made;
    fill(paramsBox, made.length ? made.map((f) => f.el) : h("span", { class: "muted" }, "No parameters."));
  };
  select.addEventListener("change", showParams);

  const picker = h("input", { type: "file", id: "file", accept: "image/*" });
  const thumb = h("img", { class: "thumb", alt: "", hidden: true });
  const fileName = h("span", { class: "file-name" }, "Drop a photo here, or choose one");
  const run = h("button", { type: "submit", class: "primary", id: "run", disabled: true }, "Run");
  const take = (f: File | undefined) => {
    if (!f) return;
    file = f;
    // Not revoked: the result shown for the previous photo still uses its URL as the "before" image.
    preview = URL.createObjectURL(f);
    thumb.src = preview;
    thumb.hidden = false;
    fileName.textContent = `${f.name} (${Math.round(f.size / 1024)} KiB)`;
    run.disabled = false;
  };
  picker.addEventListener("change", () => take(picker.files?.[0]));
  const drop = h("label", { class: "drop", id: "drop", for: "file" }, thumb, fileName, picker);
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    take(e.dataTransfer?.files[0]);
  });

  const form = h("form", { class: "run", id: "run-form" }, h("label", {}, "Operation", select), summary, paramsBox, drop, run);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!file) return;
    const op = chosen();
    const query: Record<string, string> = {};
    for (const f of fields) {
      const v = f.read();
      if (v !== undefined) query[f.name] = v;
    }
    run.disabled = true;
    result.dataset.following = "";
    fill(result, h("p", { class: "muted" }, `Uploading ${file.name}…`));
    const before = preview;
    try {
      const job = await api<Job>("POST", op.path, {
        query,
        body: file,
        // The key makes a retried click safe: the API answers a replay with the same job.
        headers: { "content-type": file.type || "application/octet-stream", "idempotency-key": crypto.randomUUID() },
      });
      onJob();
      await follow(api, job.id, result, before);
      onJob();
    } catch (err) {
      fill(result, problemView(err));
    } finally {
      run.disabled = false;
    }
  });
  showParams();
  return h("section", { class: "view", id: "view-run" }, h("h2", {}, "Run an operation"), form, result);
}
