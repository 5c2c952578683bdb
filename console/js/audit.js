// Audit: every ready report as a card (its top rows) or a page (all rows), under shared
// filters (user, namespace, verb, resource, status, source IP) and range; a row opens the
// events behind it through the row's `query`; an events-over-time chart of forbidden and
// mutating requests.

import { el, resolveRange, showTime, num, quote } from "./util.js";
import { api, qs } from "./api.js";
import { barChart, intervalFor, intervalText } from "./chart.js";
import { patch, href, rangePicker, zoomTo } from "./app.js";
import { hitRow, detail } from "./search.js";

/** The ready reports, in the order the cards show them. */
export const REPORTS = ["forbidden", "forbidden-bursts", "secret-access", "exec-attach", "rbac-changes", "deletions", "privileged-pods", "impersonation", "anonymous", "token-requests", "top-users", "top-resources", "top-source-ips", "top-user-agents", "timeline", "latency"];

/** The filters and the audit field each one matches. */
const FILTERS = [["user", "user"], ["namespace", "namespace"], ["verb", "verb"], ["resource", "resource"], ["status", "status_code"], ["source_ip", "source_ips"]];

/** The query of the state's filters (empty when none is set). */
export function filterQuery(state) {
  return FILTERS.filter(([k]) => state[k]).map(([k, f]) => `${f}:${quote(state[k])}`).join(" AND ");
}

const COMPLETED = "(stage:ResponseComplete OR stage:Panic)";
const FORBIDDEN = "(status_code:403 OR decision:forbid)";
const MUTATING = "(verb:create OR verb:update OR verb:patch OR verb:delete OR verb:deletecollection)";

function filterBar(state) {
  const inputs = FILTERS.map(([k]) => el("input", { name: k, value: state[k] || "", placeholder: k.replace("_", " "), "aria-label": k, size: 12 }));
  return el("form.filters", {
    onsubmit: (e) => {
      e.preventDefault();
      const changes = {};
      for (const i of inputs) changes[i.name] = i.value.trim();
      patch(changes);
    },
  }, inputs, el("button.primary", { type: "submit" }, "filter"));
}

/** A report's rows as a table; a click on a row opens its events. */
function rowsTable(report, rows, range, limit) {
  if (!rows.length) return el("p.muted", "no rows");
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => k !== "query");
  const shown = limit ? rows.slice(0, limit) : rows;
  return el("table.rows", el("thead", el("tr", keys.map((k) => el("th", k)))), el("tbody", shown.map((r) => el("tr.report-row", {
    dataset: { count: String(r.count ?? ""), query: r.query || "" },
    tabindex: "0",
    onclick: () => r.query && patch({ view: "audit-events", report, events_q: r.query, start: range.start, end: range.end, range: "", count: r.count }),
  }, keys.map((k) => el("td", { class: k === "count" ? "n" : undefined, dataset: { key: k } }, k.endsWith("_seen") ? showTime(r[k]) : Array.isArray(r[k]) ? r[k].join(", ") : String(r[k] ?? "")))))));
}

async function eventsChart(host, state, range, signal) {
  const width = intervalFor(range.endMs - range.startMs);
  const extra = filterQuery(state);
  const q = (x) => [COMPLETED, x, extra].filter(Boolean).join(" AND ");
  const aggs = { h: { date_histogram: { field: "timestamp", fixed_interval: intervalText(width), min_doc_count: 0 } } };
  const ask = (x) => api("/api/v1/audit/search", { body: { q: q(x), start: range.start, end: range.end, limit: 0, aggs }, signal });
  const [forbidden, mutating] = await Promise.all([ask(FORBIDDEN), ask(MUTATING)]);
  const byKey = new Map();
  const put = (answer, name) => {
    for (const b of answer.aggregations.h.buckets) {
      const cur = byKey.get(b.key) || { start: b.key, end: b.key + width, parts: {}, total: 0 };
      cur.parts[name] = b.doc_count;
      cur.total += b.doc_count;
      byKey.set(b.key, cur);
    }
  };
  put(forbidden, "forbidden");
  put(mutating, "mutating");
  barChart(host, [...byKey.values()].sort((a, b) => a.start - b.start), ["forbidden", "mutating"], { startMs: range.startMs, endMs: range.endMs, grouped: true, label: "forbidden and mutating requests", onZoom: zoomTo, onBar: (b) => zoomTo(b.start, b.end) });
  host.dataset.forbidden = String(forbidden.total);
  host.dataset.mutating = String(mutating.total);
}

export async function auditView(main, state, signal) {
  const range = resolveRange({ range: "24h", ...state });
  const q = filterQuery(state);
  const chart = el("div#audit-chart.chart-host");
  const body = el("div.cards");
  const report = REPORTS.includes(state.report) ? state.report : null;
  main.replaceChildren(
    el("div.toolbar", el("h2", report ? el("span", el("a", { href: href({ ...state, report: "" }) }, "Audit"), ` / ${report}`) : "Audit"), el("span.spacer"), rangePicker({ range: "24h", ...state })),
    el("div.toolbar", filterBar(state)),
    el("h3", "Forbidden and mutating requests over time"),
    chart,
    body,
  );
  eventsChart(chart, state, range, signal).catch((e) => e.name !== "AbortError" && chart.replaceChildren(el("p.error", e.message)));
  const params = { start: range.start, end: range.end, q };
  if (report) {
    const answer = await api(`/api/v1/audit/reports/${report}${qs({ ...params, limit: 1000 })}`, { signal });
    body.className = "report-page";
    body.append(el("section.card.wide", { dataset: { report } }, el("h3", report, el("span.muted", ` ${answer.rows.length} rows · ${answer.took_ms} ms`)), rowsTable(report, answer.rows, range)));
    return;
  }
  await Promise.all(REPORTS.map(async (name) => {
    const card = el("section.card", { dataset: { report: name } }, el("h3", el("a", { href: href({ ...state, view: "audit", report: name, start: range.start, end: range.end, range: "" }) }, name)), el("p.muted", "…"));
    body.append(card);
    try {
      const answer = await api(`/api/v1/audit/reports/${name}${qs({ ...params, limit: 100 })}`, { signal });
      card.lastChild.replaceWith(rowsTable(name, answer.rows, range, 5));
      if (answer.rows.length > 5) card.append(el("a.more-rows", { href: href({ ...state, view: "audit", report: name, start: range.start, end: range.end, range: "" }) }, `all ${answer.rows.length} rows`));
    } catch (e) {
      if (e.name === "AbortError") throw e;
      card.lastChild.replaceWith(el("p.error", e.message));
    }
  }));
}

/** The request and response objects of one audit event, side by side, then every field. */
function eventView(hit) {
  const obj = (title, v) => el("div.object", el("h4", title), v === undefined || v === null ? el("p.muted", "not recorded (audit level below Request)") : el("pre", JSON.stringify(v, null, 2)));
  return el("div.event-view", el("div.objects", obj("request object", hit.request_object), obj("response object", hit.response_object)));
}

/** The events behind a report row: its `query` over the row's range, every one of them. */
export async function auditEventsView(main, state, signal) {
  const list = el("div#events.hits");
  const totalEl = el("span#events-total.total", "…");
  main.replaceChildren(
    el("div.toolbar", el("a.button", { href: href({ view: "audit", report: state.report, start: state.start, end: state.end }) }, `← ${state.report || "audit"}`), el("code.query", state.events_q || ""), el("span.spacer"), totalEl),
    list,
  );
  const base = { q: state.events_q || "*", start: state.start, end: state.end, limit: 500 };
  let page = await api("/api/v1/audit/search", { body: base, signal });
  totalEl.textContent = `${num(page.total)} events`;
  totalEl.dataset.total = String(page.total);
  const add = (hits) => list.append(...hits.map((h) => hitRow("audit", h, null, null, () => eventView(h))));
  add(page.hits);
  // Every event of the row, up to 5,000 (a row with more is better searched with its query).
  let shown = page.hits.length;
  while (page.cursor && shown < page.total && shown < 5000) {
    page = await api("/api/v1/audit/search", { body: { ...base, search_after: page.cursor }, signal });
    if (!page.hits.length) break;
    add(page.hits);
    shown += page.hits.length;
  }
  if (shown < page.total) list.append(el("p.muted", `showing the first ${num(shown)}; search with the query above for the rest`));
}

export { detail };
