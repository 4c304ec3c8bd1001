import { TERMINAL, type Api, type Job, type List } from "./api.ts";
import { ago, fill, h } from "./dom.ts";
import { problemView } from "./run.ts";

/** How often the list is refreshed: faster while a job of it is still queued or running. */
const ACTIVE_POLL_MS = 1000;
const IDLE_POLL_MS = 5000;

/**
 * The job list with live status. The API has no push channel for clients (events go to webhooks), so it polls
 * GET /v1/jobs, and not while the tab is hidden.
 */
export function jobsPanel(api: Api, open: (job: Job) => void): { el: HTMLElement; refresh(): void; stop(): void } {
  const body = h("tbody", {});
  const note = h("p", { class: "muted", id: "jobs-note" });
  const stages = h("input", { type: "checkbox", id: "include-children" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let inFlight = false;

  const rowOf = (j: Job) => {
    const tr = h(
      "tr",
      { "data-job": j.id, "data-status": j.status, tabindex: 0 },
      h("td", {}, h("code", {}, j.operation), j.parent_id ? h("span", { class: "muted" }, " stage") : null),
      h("td", {}, h("span", { class: `status s-${j.status}` }, j.status)),
      h("td", { class: "muted", title: j.created_at }, ago(j.created_at)),
      h(
        "td",
        {},
        TERMINAL.includes(j.status) ? null : h("button", { class: "link cancel", type: "button", "data-cancel": j.id }, "cancel"),
      ),
    );
    tr.addEventListener("click", async (e) => {
      if ((e.target as HTMLElement).closest("[data-cancel]")) {
        e.stopPropagation();
        try {
          await api("POST", `/v1/jobs/${j.id}/cancel`);
        } catch (err) {
          fill(note, problemView(err));
        }
        refresh();
        return;
      }
      open(j);
    });
    tr.addEventListener("keydown", (e) => e.key === "Enter" && open(j));
    return tr;
  };

  async function load() {
    if (inFlight) return;
    inFlight = true;
    let active = false;
    try {
      const list = await api<List<Job>>("GET", "/v1/jobs", { query: { limit: "20", include_children: String(stages.checked) } });
      fill(body, list.data.map(rowOf));
      note.textContent = list.data.length ? `updated ${new Date().toLocaleTimeString()}` : "No jobs yet.";
      active = list.data.some((j) => !TERMINAL.includes(j.status));
    } catch (err) {
      fill(note, problemView(err));
    } finally {
      inFlight = false;
    }
    schedule(active ? ACTIVE_POLL_MS : IDLE_POLL_MS);
  }
  function schedule(ms: number) {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(() => (document.hidden ? schedule(ms) : void load()), ms);
  }
  function refresh() {
    if (stopped) return;
    clearTimeout(timer);
    void load();
  }
  stages.addEventListener("change", refresh);
  document.addEventListener("visibilitychange", () => !document.hidden && refresh());
  refresh();
  return {
    el: h(
      "aside",
      { id: "jobs" },
      h("header", {}, h("h2", {}, "Jobs"), h("label", { class: "check" }, stages, "stages")),
      h(
        "table",
        { class: "list" },
        h("thead", {}, h("tr", {}, h("th", {}, "operation"), h("th", {}, "status"), h("th", {}, "created"), h("th", {}))),
        body,
      ),
      note,
    ),
    refresh,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
