/** Markup that is already escaped: the only thing `html` interpolates without escaping. */
export class Safe {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

type Part = string | number | Safe | null | undefined | false | Part[];

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function render(part: Part): string {
  if (part === null || part === undefined || part === false) return "";
  if (Array.isArray(part)) return part.map(render).join("");
  if (part instanceof Safe) return part.value;
  return escapeHtml(String(part));
}

/**
 * A tagged template that escapes every interpolated value (text and attribute values alike) unless it is `Safe`,
 * so text from the document (descriptions, examples, enum values) can never become markup. Arrays are joined.
 */
export function html(strings: TemplateStringsArray, ...values: Part[]): Safe {
  let out = strings[0]!;
  values.forEach((v, i) => (out += render(v) + strings[i + 1]!));
  return new Safe(out);
}

/** Text with `code` spans, the only markdown the route descriptions use. */
export function inlineText(text: string | undefined): Safe {
  if (!text) return new Safe("");
  return new Safe(
    text
      .split("`")
      .map((piece, i) => (i % 2 === 1 ? `<code>${escapeHtml(piece)}</code>` : escapeHtml(piece)))
      .join(""),
  );
}
