// The search view (histogram by level, facets, hits with cursor paging, export) and the
// context view (the lines around a hit from the same pod and container, paged both ways).

import { el, resolveRange, showTime, num, quote, addClause, highlighter, highlight, LEVELS, STREAM_FIELDS, FACETS, KEYWORDS, toNanos, fromNanos } from "./util.js";
import { api, qs, download } from "./api.js";
import { barChart, bucketsOf, intervalFor, intervalText } from "./chart.js";
import { queryBox } from "./query.js";
import { patch, navigate, rangePicker, streamPicker, zoomTo, href } from "./app.js";

const PAGE = 50;

/** Streams the server knows, for the picker (empty if the listing fails). */
async function streamNames(signal) {
  try {
    const r = await api("/api/v1/streams", { signal });
    return r.streams.map((s) => s.name);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    return [];
  }
}

/** The field whose values stack the histogram, per stream. */
const STACK_BY = { logs: "level", journal: "level" };

/** A hit's one-line summary fields, per stream. */
function summary(stream, hit) {
  if (stream === "audit") return [hit.verb, hit.resource && `${hit.resource}${hit.subresource ? "/" + hit.subresource : ""}`, hit.namespace, hit.name, hit.user, hit.status_code].filter((v) => v !== undefined && v !== "");
  if (stream === "events") return [hit.type, hit.namespace, hit.kind && `${hit.kind}/${hit.name}`, hit.reason].filter(Boolean);
  return [hit.namespace, hit.pod, hit.container].filter(Boolean);
}

/** The text of a hit's line. */
function lineText(stream, hit) {
  if (stream === "audit") return hit.request_uri || "";
  return hit.message ?? JSON.stringify(hit);
}

/** Renders a value as a tree: objects and arrays folded, leaves clickable to filter. */
function valueTree(path, value, onFilter, depth = 0) {
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const d = el("details.obj", { open: depth === 0 ? true : undefined }, el("summary", Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`));
    const list = el("dl");
    for (const [k, v] of entries) {
      const p = Array.isArray(value) ? path : `${path}.${k}`;
      list.append(el("dt", String(k)), el("dd", valueTree(p, v, onFilter, depth + 1)));
    }
    d.append(list);
    return d;
  }
  return leaf(path, value, onFilter);
}

function leaf(field, value, onFilter) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return el(
    "span.leaf",
    el("span.val", { dataset: { field } }, text),
    onFilter && el("button.mini.add", { type: "button", title: `add ${field}:${text}`, onclick: (e) => { e.stopPropagation(); onFilter(field, value, false); } }, "+"),
    onFilter && el("button.mini.neg", { type: "button", title: `exclude ${field}:${text}`, onclick: (e) => { e.stopPropagation(); onFilter(field, value, true); } }, "−"),
  );
}

/** The expanded form of a hit: every field, JSON pretty-printed with objects folded. */
export function detail(hit, onFilter, extra) {
  const list = el("dl.fields");
  for (const [k, v] of Object.entries(hit)) {
    list.append(el("dt", k), el("dd", v !== null && typeof v === "object" ? valueTree(k, v, onFilter) : leaf(k, v, onFilter)));
  }
  return el(
    "div.detail",
    { onclick: (e) => e.stopPropagation() },
    el("div.actions", extra, el("button", { type: "button", onclick: () => navigator.clipboard && navigator.clipboard.writeText(JSON.stringify(hit, null, 2)) }, "copy JSON")),
    list,
    el("details.raw", el("summary", "JSON"), el("pre", JSON.stringify(hit, null, 2))),
  );
}

/** One hit row; a click expands it. */
export function hitRow(stream, hit, re, onFilter, extra) {
  const level = String(hit.level || "").toLowerCase();
  const row = el(
    "div.hit",
    { dataset: { ts: hit.timestamp || "" }, tabindex: "0" },
    el("div.line", el("span.ts", showTime(hit.timestamp)), el("span", { class: `lvl s-${LEVELS.includes(level) ? level : "other"}` }, LEVELS.includes(level) ? level : ""), el("span.src", summary(stream, hit).join(" · ")), el("span.msg", highlight(lineText(stream, hit), re))),
  );
  const toggle = () => {
    const open = row.querySelector(".detail");
    if (open) open.remove();
    else row.append(detail(hit, onFilter, extra && extra(hit)));
    row.classList.toggle("open", !open);
  };
  row.addEventListener("click", toggle);
  row.addEventListener("keydown", (e) => e.key === "Enter" && e.target === row && toggle());
  return row;
}

/** `field:value` or `-field:value` added to the state's query. */
export function filterer(state) {
  return (field, value, negate) => {
    const clause = `${negate ? "-" : ""}${field}:${quote(value)}`;
    let q = addClause(state.q, clause);
    if (negate && !(state.q || "").trim()) q = `* ${clause}`;
    patch({ q, cursor: "" });
  };
}

export async function searchView(main, state, signal) {
  const stream = state.stream || "logs";
  const q = state.q || "";
  const range = resolveRange(state);
  const width = intervalFor(range.endMs - range.startMs);
  const stackBy = STACK_BY[stream];
  const facets = FACETS[stream] || [];
  const onFilter = filterer(state);
  const seenFields = new Set(STREAM_FIELDS[stream] || []);
  const valueCache = new Map();

  const aggs = {
    histogram: {
      date_histogram: { field: "timestamp", fixed_interval: intervalText(width), min_doc_count: 0 },
      ...(stackBy ? { aggs: { [stackBy]: { terms: { field: stackBy, size: 20 } } } } : {}),
    },
  };
  for (const f of facets) aggs[`facet_${f}`] = { terms: { field: f, size: 10 } };
  const base = { q: q || "*", start: range.start, end: range.end };

  const chartHost = el("div#histogram.chart-host");
  const totalEl = el("span#total.total", "…");
  const facetsEl = el("aside#facets.facets");
  const hitsEl = el("div#hits.hits");
  const moreEl = el("div.more");
  const errorEl = el("p.error", { hidden: true });
  const format = el("select#export-format", { "aria-label": "export format" }, ["ndjson", "csv", "parquet"].map((f) => el("option", f)));
  const exportButton = el("button#export", {
    type: "button",
    onclick: async () => {
      try {
        await download(`/api/v1/${encodeURIComponent(stream)}/export${qs({ ...base, format: format.value })}`, `trawl-${stream}.${format.value}`);
      } catch (e) {
        errorEl.hidden = false;
        errorEl.textContent = e.message;
      }
    },
  }, "export");
  const box = queryBox({
    value: q,
    fields: () => [...seenFields].sort(),
    // Values of the whole range, not only of the current query, so that other values show.
    values: async (field) => {
      if (!KEYWORDS.has(field)) return [];
      if (!valueCache.has(field)) {
        valueCache.set(field, api(`/api/v1/${encodeURIComponent(stream)}/search`, { body: { q: "*", start: base.start, end: base.end, limit: 0, aggs: { v: { terms: { field, size: 50 } } } } }).then((r) => r.aggregations.v.buckets));
      }
      return valueCache.get(field);
    },
    onSubmit: (text) => patch({ q: text, cursor: "" }),
  });
  const picker = streamPicker(state, [], (s) => navigate({ view: "search", stream: s, range: state.range, start: state.start, end: state.end }));
  main.replaceChildren(
    el("div.toolbar", picker, box),
    el("div.toolbar", rangePicker(state), el("span.spacer"), totalEl, el("span.export", format, exportButton)),
    errorEl,
    chartHost,
    el("div.body", facetsEl, el("section.results", hitsEl, moreEl)),
  );
  streamNames(signal).then((names) => {
    for (const n of names) if (![...picker.options].some((o) => o.value === n)) picker.append(el("option", { value: n }, n));
  }, () => {});

  let answer;
  try {
    answer = await api(`/api/v1/${encodeURIComponent(stream)}/search`, { body: { ...base, limit: PAGE, aggs }, signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    errorEl.hidden = false;
    errorEl.textContent = e.message;
    totalEl.textContent = "";
    return;
  }
  totalEl.textContent = `${num(answer.total)} hits`;
  totalEl.dataset.total = String(answer.total);
  if (answer.partial) totalEl.append(el("span.warn", " (partial: an indexer did not answer)"));

  const buckets = bucketsOf(answer.aggregations.histogram, width, stackBy || "none", LEVELS);
  barChart(chartHost, buckets, stackBy ? LEVELS : ["other"], {
    startMs: range.startMs,
    endMs: range.endMs,
    label: "volume by level",
    onZoom: zoomTo,
    onBar: (b) => zoomTo(b.start, b.end),
  });
  chartHost.dataset.start = range.start;
  chartHost.dataset.end = range.end;

  for (const f of facets) {
    const buckets = (answer.aggregations[`facet_${f}`] || {}).buckets || [];
    facetsEl.append(
      el("section.facet", { dataset: { field: f } }, el("h3", f), buckets.length ? el("ul", buckets.map((b) => el("li.facet-value", { dataset: { value: String(b.key) } },
        el("a", { href: href({ ...state, q: addClause(state.q, `${f}:${quote(b.key)}`), cursor: "" }), title: `${f}:${b.key}` }, String(b.key)),
        el("span.count", num(b.doc_count)),
        el("button.mini.neg", { type: "button", title: `exclude ${f}:${b.key}`, onclick: () => onFilter(f, b.key, true) }, "−"),
      ))) : el("p.muted", "none")),
    );
  }

  const re = highlighter(q);
  const contextLink = (hit) => (hit.pod && hit.timestamp ? el("a.button", { href: href({ view: "context", stream, at: hit.timestamp, namespace: hit.namespace, pod: hit.pod, container: hit.container }) }, "context") : null);
  const addHits = (hits) => {
    for (const h of hits) {
      for (const k of Object.keys(h)) seenFields.add(k);
      hitsEl.append(hitRow(stream, h, re, onFilter, contextLink));
    }
  };
  addHits(answer.hits);
  if (!answer.hits.length) hitsEl.append(el("p.muted.empty", "No records in this range. Try a longer range or another query."));
  let cursor = answer.cursor;
  const more = el("button#load-more", {
    type: "button",
    onclick: async () => {
      more.disabled = true;
      try {
        const page = await api(`/api/v1/${encodeURIComponent(stream)}/search`, { body: { ...base, limit: PAGE, search_after: cursor }, signal });
        addHits(page.hits);
        cursor = page.cursor;
        more.hidden = !cursor || page.hits.length < PAGE;
      } catch (e) {
        if (e.name !== "AbortError") moreEl.append(el("span.error", e.message));
      }
      more.disabled = false;
    },
  }, "load more");
  more.hidden = !cursor || answer.hits.length >= answer.total;
  moreEl.append(more);
}

/** The lines around one hit: same namespace, pod and container, older above, newer below. */
export async function contextView(main, state, signal) {
  const stream = state.stream || "logs";
  const at = toNanos(state.at);
  const clauses = ["namespace", "pod", "container"].filter((f) => state[f]).map((f) => `${f}:${quote(state[f])}`);
  const q = clauses.join(" AND ") || "*";
  const path = `/api/v1/${encodeURIComponent(stream)}/search`;
  const size = Number(state.lines) || 20;
  const list = el("div#context.hits.context");
  const olderBtn = el("button#older", { type: "button" }, "older");
  const newerBtn = el("button#newer", { type: "button" }, "newer");
  main.replaceChildren(
    el("div.toolbar", el("a.button", { href: href({ view: "search", stream, q: clauses.join(" AND "), start: fromNanos(at - 300000000000n), end: fromNanos(at + 300000000000n) }) }, "search these ±5m"), el("h2", `Context of ${state.pod || ""}${state.container ? " / " + state.container : ""}`), el("span.muted", showTime(state.at))),
    el("div.more", olderBtn),
    list,
    el("div.more", newerBtn),
  );
  const row = (hit, anchor) => {
    const r = hitRow(stream, hit, null, null);
    if (anchor) r.classList.add("anchor");
    return r;
  };
  const older = { q, end: fromNanos(at), sort: "desc", limit: size };
  const newer = { q, start: fromNanos(at + 1n), sort: "asc", limit: size };
  const [before, self, after] = await Promise.all([
    api(path, { body: older, signal }),
    api(path, { body: { q, start: fromNanos(at), end: fromNanos(at + 1n), limit: 10 }, signal }),
    api(path, { body: newer, signal }),
  ]);
  list.append(...before.hits.slice().reverse().map((h) => row(h)), ...self.hits.map((h) => row(h, true)), ...after.hits.map((h) => row(h)));
  const pager = (btn, params, first, prepend) => {
    let cursor = first.cursor;
    btn.hidden = !cursor || first.hits.length < size;
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      const page = await api(path, { body: { ...params, search_after: cursor }, signal });
      if (prepend) list.prepend(...page.hits.slice().reverse().map((h) => row(h)));
      else list.append(...page.hits.map((h) => row(h)));
      cursor = page.cursor;
      btn.hidden = !cursor || page.hits.length < size;
      btn.disabled = false;
    });
  };
  pager(olderBtn, older, before, true);
  pager(newerBtn, newer, after, false);
  list.querySelector(".anchor")?.scrollIntoView({ block: "center" });
}
