import { apiClient, loadDocument, type Api, type Job } from "./api.ts";
import { fill, h } from "./dom.ts";
import { jobsPanel } from "./jobs.ts";
import { follow, problemView, runnableOperations, runView } from "./run.ts";
import { webhooksView } from "./webhooks.ts";

/** The API key lives in sessionStorage only: it goes with the tab, and nothing is written to localStorage. */
const KEY_ITEM = "vigil.console.key";
const root = document.getElementById("app")!;

function signIn(message?: HTMLElement) {
  const key = h("input", {
    type: "password",
    id: "api-key",
    name: "api-key",
    autocomplete: "off",
    required: true,
    placeholder: "vgl_…",
  });
  const status = h("div", {}, message ?? null);
  const form = h(
    "form",
    { id: "sign-in", class: "card" },
    h("h1", {}, "Vigil console"),
    h(
      "p",
      { class: "muted" },
      "Sign in with a tenant API key. It is kept in this tab's session storage and sent only to this origin.",
    ),
    h("label", {}, "API key", key),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    status,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = key.value.trim();
    try {
      // Any tenant key may list its jobs: a cheap check that the key is valid before it is kept.
      await apiClient(value, () => {})("GET", "/v1/jobs", { query: { limit: "1" } });
      sessionStorage.setItem(KEY_ITEM, value);
      void start(value);
    } catch (err) {
      fill(status, problemView(err));
    }
  });
  fill(root, form);
  key.focus();
}

function signOut(message?: HTMLElement) {
  sessionStorage.removeItem(KEY_ITEM);
  stopJobs?.();
  signIn(message);
}

let stopJobs: (() => void) | undefined;

async function start(key: string) {
  const api: Api = apiClient(key, () =>
    signOut(h("div", { class: "problem", role: "alert" }, "The key was refused (401); sign in again.")),
  );
  let doc;
  try {
    doc = await loadDocument();
  } catch (err) {
    fill(root, problemView(err));
    return;
  }
  const ops = runnableOperations(doc);
  const run = runView(api, ops, () => jobs.refresh());
  const result = run.querySelector<HTMLElement>("#result")!;
  const jobs = jobsPanel(api, async (j: Job) => {
    show("run");
    try {
      await follow(api, j.id, result);
    } catch (err) {
      fill(result, problemView(err));
    }
  });
  stopJobs = jobs.stop;
  const hooks = webhooksView(api);
  const views = { run, webhooks: hooks.el };
  const tabs = Object.keys(views).map((name) =>
    h(
      "button",
      { type: "button", class: "tab", "data-view": name, onclick: () => show(name as keyof typeof views) },
      name === "run" ? "Run" : "Webhooks",
    ),
  );
  function show(name: keyof typeof views) {
    for (const [n, el] of Object.entries(views)) el.hidden = n !== name;
    for (const t of tabs) t.classList.toggle("active", t.dataset.view === name);
    if (name === "webhooks") void hooks.load();
  }
  const masked = key.length > 12 ? `${key.slice(0, 8)}…${key.slice(-4)}` : "…";
  fill(
    root,
    h(
      "header",
      { class: "top" },
      h("strong", { class: "brand" }, "Vigil console"),
      h("nav", {}, ...tabs),
      h("span", { class: "muted key", title: "signed in with this key" }, masked),
      h("a", { href: "/docs" }, "API reference"),
      h("button", { type: "button", id: "sign-out", onclick: () => signOut() }, "Sign out"),
    ),
    h("div", { class: "layout" }, h("div", { class: "views" }, run, hooks.el), jobs.el),
  );
  show("run");
}

const saved = sessionStorage.getItem(KEY_ITEM);
if (saved) void start(saved);
else signIn();
