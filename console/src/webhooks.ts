import type { Api, List, WebhookDelivery, WebhookEndpoint } from "./api.ts";
import { ago, fill, h } from "./dom.ts";
import { problemView } from "./run.ts";

/** Webhook endpoints (the key needs the admin scope): create, delete, and each one's delivery log with every attempt. */
export function webhooksView(api: Api): { el: HTMLElement; load(): Promise<void> } {
  const list = h("tbody", {});
  const status = h("div", { id: "webhooks-status" });
  const log = h("div", { id: "deliveries" });

  const url = h("input", { type: "url", id: "webhook-url", required: true, placeholder: "https://example.com/hooks" });
  const events = h("input", {
    type: "text",
    id: "webhook-events",
    value: "*",
    title: "comma-separated: job.succeeded, verification.face_swap_detected, or *",
  });
  const form = h(
    "form",
    { class: "inline", id: "webhook-form" },
    h("label", {}, "URL", url),
    h("label", {}, "Events", events),
    h("button", { type: "submit", class: "primary" }, "Add endpoint"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const ep = await api<WebhookEndpoint>("POST", "/v1/webhook_endpoints", {
        json: {
          url: url.value,
          events: events.value
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean),
        },
      });
      fill(
        status,
        h(
          "div",
          { class: "notice", id: "webhook-secret" },
          "Signing secret for ",
          h("code", {}, ep.url),
          " (shown once): ",
          h("code", { class: "secret" }, ep.secret ?? ""),
        ),
      );
      url.value = "";
      await load();
    } catch (err) {
      fill(status, problemView(err));
    }
  });

  async function showDeliveries(ep: WebhookEndpoint) {
    fill(log, h("p", { class: "muted" }, "Loading deliveries…"));
    try {
      const page = await api<List<WebhookDelivery>>("GET", `/v1/webhook_endpoints/${ep.id}/deliveries`, {
        query: { limit: "50" },
      });
      fill(
        log,
        h("h3", {}, "Deliveries to ", h("code", {}, ep.url)),
        page.data.length
          ? h(
              "table",
              { class: "list", "data-endpoint": ep.id },
              h(
                "thead",
                {},
                h("tr", {}, h("th", {}, "event"), h("th", {}, "status"), h("th", {}, "attempts"), h("th", {}, "created")),
              ),
              h(
                "tbody",
                {},
                ...page.data.map((d) =>
                  h(
                    "tr",
                    { "data-delivery": d.id, "data-event-type": d.event_type, "data-status": d.status },
                    h("td", {}, h("code", {}, d.event_type)),
                    h("td", {}, h("span", { class: `status s-${d.status}` }, d.status)),
                    h(
                      "td",
                      {},
                      h(
                        "ol",
                        { class: "attempts" },
                        ...d.attempts.map((a) =>
                          h(
                            "li",
                            { "data-status-code": a.status_code ?? "" },
                            a.status_code ? `HTTP ${a.status_code}` : (a.error ?? "no answer"),
                            h("span", { class: "muted" }, ` ${a.duration_ms} ms`),
                          ),
                        ),
                      ),
                    ),
                    h("td", { class: "muted", title: d.created_at }, ago(d.created_at)),
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, "No deliveries yet."),
        h("button", { type: "button", class: "link", onclick: () => void showDeliveries(ep) }, "refresh"),
      );
    } catch (err) {
      fill(log, problemView(err));
    }
  }

  async function load() {
    try {
      const page = await api<List<WebhookEndpoint>>("GET", "/v1/webhook_endpoints");
      fill(
        list,
        page.data.length
          ? page.data.map((ep) =>
              h(
                "tr",
                { "data-endpoint": ep.id },
                h("td", {}, h("code", {}, ep.url)),
                h("td", {}, ep.events.join(", ")),
                h("td", { class: "muted" }, ago(ep.created_at)),
                h(
                  "td",
                  {},
                  h(
                    "button",
                    { type: "button", class: "link", "data-action": "deliveries", onclick: () => void showDeliveries(ep) },
                    "deliveries",
                  ),
                  " ",
                  h(
                    "button",
                    {
                      type: "button",
                      class: "link danger",
                      onclick: async () => {
                        try {
                          await api("DELETE", `/v1/webhook_endpoints/${ep.id}`);
                          fill(log);
                        } catch (err) {
                          fill(status, problemView(err));
                        }
                        await load();
                      },
                    },
                    "delete",
                  ),
                ),
              ),
            )
          : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No endpoints.")),
      );
    } catch (err) {
      fill(status, problemView(err));
    }
  }

  return {
    el: h(
      "section",
      { class: "view", id: "view-webhooks", hidden: true },
      h("h2", {}, "Webhook endpoints"),
      form,
      status,
      h(
        "table",
        { class: "list" },
        h("thead", {}, h("tr", {}, h("th", {}, "url"), h("th", {}, "events"), h("th", {}, "created"), h("th", {}))),
        list,
      ),
      log,
    ),
    load,
  };
}
