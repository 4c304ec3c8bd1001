import { h } from "./dom.ts";

/**
 * Before/after: the result over the original, clipped at the slider. The clip is set through the CSSOM
 * (`style.clipPath`), which the page's `style-src 'self'` allows, unlike a style attribute.
 */
export function beforeAfter(before: string, after: string, labels: [string, string] = ["before", "after"]): HTMLElement {
  const top = h("img", { class: "after", src: after, alt: labels[1] });
  const line = h("div", { class: "divider" });
  const range = h("input", { type: "range", min: 0, max: 100, value: 50, step: 0.5, "aria-label": "before / after" });
  const place = () => {
    const v = Number(range.value);
    top.style.clipPath = `inset(0 0 0 ${v}%)`;
    line.style.left = `${v}%`;
  };
  range.addEventListener("input", place);
  place();
  return h(
    "figure",
    { class: "compare" },
    h("div", { class: "stack" }, h("img", { class: "before", src: before, alt: labels[0] }), top, line),
    range,
    h("figcaption", {}, h("span", {}, `◀ ${labels[0]}`), h("span", {}, `${labels[1]} ▶`)),
  );
}
