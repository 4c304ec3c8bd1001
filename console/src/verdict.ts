import type { Rate, Verification } from "./api.ts";
import { h } from "./dom.ts";

const LABELS: Record<string, string> = {
  authentic: "Authentic",
  face_swapped: "Face swapped",
  not_protected: "Not protected",
  inconclusive: "Inconclusive",
};

const pct = (v: number) => `${(v * 100).toFixed(v < 0.01 ? 2 : 1)} %`;
const rateText = (r: Rate) => `${pct(r.rate)} (95 % interval ${pct(r.ci95[0])} – ${pct(r.ci95[1])})`;

/** One evidence row; `value` is the raw number or string from the response, kept in data-value for tests and copy. */
function row(field: string, label: string, text: string, value?: unknown, note?: string) {
  return h(
    "tr",
    { "data-field": field, "data-value": value === undefined ? undefined : JSON.stringify(value) },
    h("th", {}, label),
    h("td", {}, text, note ? h("span", { class: "note" }, ` ${note}`) : null),
  );
}

/**
 * verify's verdict with its evidence: the watermark's presence p-value, the deciding identity distance against its
 * threshold, the error rates of that comparison with their 95 % intervals, and the asset the watermark traced to.
 */
export function verdictView(out: Verification): HTMLElement {
  const ev = out.evidence;
  const over = ev.identity_distance !== null && ev.identity_distance > ev.threshold;
  const metric = ev.identity_metric === "hamming" ? "Hamming, bits" : ev.identity_metric === "euclidean" ? "euclidean" : "";
  const distance =
    ev.identity_distance === null
      ? "not compared"
      : `${ev.identity_metric === "hamming" ? ev.identity_distance : ev.identity_distance.toFixed(3)} ${over ? ">" : "≤"} threshold ${
          ev.identity_metric === "hamming" ? ev.threshold : ev.threshold.toFixed(3)
        }`;
  return h(
    "section",
    { class: `verdict v-${out.verdict}`, "data-verdict": out.verdict },
    h("h3", {}, h("span", { class: "verdict-label" }, LABELS[out.verdict] ?? out.verdict), " ", h("code", {}, out.verdict)),
    h("p", { class: "reason" }, out.reason),
    h(
      "table",
      { class: "evidence" },
      h(
        "tbody",
        {},
        row(
          "watermark_detected",
          "Watermark",
          ev.watermark_detected
            ? `detected${ev.watermark_codec ? `, codec ${ev.watermark_codec}` : ""}, ${ev.bits_recovered} bits`
            : "not detected",
          ev.watermark_detected,
        ),
        row("p_value", "p-value", ev.p_value.toExponential(2), ev.p_value, "chance of reading this mark from an unmarked image"),
        row(
          "payload_authenticated",
          "Payload",
          ev.payload_authenticated ? "authenticated by your keys" : "not authenticated",
          ev.payload_authenticated,
        ),
        row(
          "identity_distance",
          "Identity distance",
          distance,
          ev.identity_distance,
          [ev.identity_basis, metric].filter(Boolean).join(", "),
        ),
        row("threshold", "Threshold", String(ev.threshold), ev.threshold),
        ev.payload_identity_distance !== null
          ? row(
              "payload_identity_distance",
              "Payload code distance",
              `${ev.payload_identity_distance} of ${ev.code_bits} bits`,
              ev.payload_identity_distance,
            )
          : null,
        row("faces_found", "Faces found", String(ev.faces_found), ev.faces_found),
        ev.swapped_faces.length ? row("swapped_faces", "Swapped faces", ev.swapped_faces.join(", "), ev.swapped_faces) : null,
        ev.false_alarm_rate
          ? row("false_alarm_rate", "False alarm rate", rateText(ev.false_alarm_rate), ev.false_alarm_rate)
          : null,
        ev.miss_rate ? row("miss_rate", "Miss rate", rateText(ev.miss_rate), ev.miss_rate) : null,
        ev.rates_basis ? row("rates_basis", "Rates measured", ev.rates_basis.replaceAll("_", " "), ev.rates_basis) : null,
      ),
    ),
    h("h4", {}, "Traced source"),
    out.source
      ? h(
          "table",
          { class: "evidence source", "data-asset": out.source.asset_id },
          h(
            "tbody",
            {},
            row("asset_id", "Asset", out.source.asset_id, out.source.asset_id),
            row("owner", "Owner", out.source.owner ?? "—", out.source.owner),
            row("protected_at", "Protected", new Date(out.source.protected_at).toLocaleString(), out.source.protected_at),
          ),
        )
      : h("p", { class: "muted", "data-asset": "" }, "No protected asset: nothing to trace."),
  );
}
