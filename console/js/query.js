// The query box: Trawl's query grammar as typed, with field-name suggestions and, after
// `field:`, the field's top values under the current range.

import { el, quote } from "./util.js";

/**
 * A form with the query input and its suggestion list.
 * opts: {value, fields(): [names], values(field): Promise<[values]>, onSubmit(q)}.
 */
export function queryBox(opts) {
  const input = el("input#q", { type: "search", value: opts.value || "", placeholder: "query, e.g. error timeout  namespace:payments AND level:error  \"connection reset\"", autocomplete: "off", spellcheck: "false", "aria-label": "query" });
  const list = el("ul.suggest", { role: "listbox", hidden: true });
  let items = [];
  let active = -1;
  let seq = 0;

  const token = () => {
    const upto = input.value.slice(0, input.selectionStart ?? input.value.length);
    const m = upto.match(/(-?)([\w.\/]*)(?::("?)([^\s"]*))?$/);
    return { start: upto.length - m[0].length + m[1].length, neg: m[1], field: m[2], hasColon: m[0].includes(":"), prefix: m[4] || "" };
  };

  const close = () => {
    list.hidden = true;
    items = [];
    active = -1;
  };

  const choose = (i) => {
    const item = items[i];
    if (!item) return;
    const t = token();
    const before = input.value.slice(0, t.start);
    const after = input.value.slice(input.selectionStart ?? input.value.length);
    const insert = item.kind === "field" ? `${item.text}:` : `${t.field}:${quote(item.text)} `;
    input.value = before + insert + after.replace(/^\S*/, "");
    const pos = (before + insert).length;
    input.setSelectionRange(pos, pos);
    input.focus();
    close();
    if (item.kind === "field") refresh();
  };

  const show = (next) => {
    items = next.slice(0, 12);
    active = -1;
    list.replaceChildren(...items.map((it, i) => el("li", { role: "option", dataset: { kind: it.kind }, onmousedown: (e) => { e.preventDefault(); choose(i); } }, el("span", it.text), it.count !== undefined ? el("span.muted", String(it.count)) : null)));
    list.hidden = items.length === 0;
  };

  const refresh = async () => {
    const t = token();
    const mine = ++seq;
    if (t.hasColon) {
      if (!t.field) return close();
      let values = [];
      try { values = await opts.values(t.field); } catch { values = []; }
      if (mine !== seq) return;
      const p = t.prefix.toLowerCase();
      show(values.filter((v) => String(v.key).toLowerCase().startsWith(p)).map((v) => ({ kind: "value", text: String(v.key), count: v.doc_count })));
    } else if (t.field.length > 0) {
      const p = t.field.toLowerCase();
      show(opts.fields().filter((f) => f.toLowerCase().startsWith(p) && f !== t.field).map((f) => ({ kind: "field", text: f })));
    } else close();
  };

  input.addEventListener("input", refresh);
  input.addEventListener("blur", () => setTimeout(close, 100));
  input.addEventListener("keydown", (e) => {
    if (!list.hidden && items.length) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        active = (active + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        [...list.children].forEach((li, i) => li.classList.toggle("active", i === active));
        return;
      }
      if ((e.key === "Enter" || e.key === "Tab") && active >= 0) {
        e.preventDefault();
        choose(active);
        return;
      }
      if (e.key === "Escape") return close();
    }
  });
  const form = el("form.query", { onsubmit: (e) => { e.preventDefault(); close(); opts.onSubmit(input.value.trim()); } }, el("div.qwrap", input, list), el("button.primary", { type: "submit" }, "Search"));
  return form;
}
