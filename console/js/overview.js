// Overview: every stream with its documents, bytes, splits and time range; on a searcher,
// which indexers (and the shared tier, when there is one) answered.

import { el, num, bytes, showTime } from "./util.js";
import { api } from "./api.js";
import { href } from "./app.js";

export async function overviewView(main, state, signal) {
  main.replaceChildren(el("h2", "Streams"), el("p.muted", "…"));
  const answer = await api("/api/v1/streams", { signal });
  const rows = answer.streams.map((s) => el("tr.stream", { dataset: { stream: s.name } },
    el("td", el("a", { href: href({ view: "search", stream: s.name, range: "24h" }) }, s.name)),
    el("td.n", num(s.docs)), el("td.n", bytes(s.bytes)), el("td.n", num(s.splits)),
    el("td", s.min_timestamp ? showTime(s.min_timestamp) : "–"), el("td", s.max_timestamp ? showTime(s.max_timestamp) : "–")));
  const parts = [
    el("h2", "Streams"),
    el("table#streams.rows", el("thead", el("tr", ["stream", "docs", "bytes", "splits", "oldest", "newest"].map((h) => el("th", h)))), el("tbody", rows)),
  ];
  if (answer.partial) parts.push(el("p.warn", "Partial: at least one indexer, or the shared tier, did not answer."));
  if (Array.isArray(answer.indexers)) {
    // With a shared tier its published splits are counted once, and each indexer's docs are
    // what it holds besides them.
    const sources = answer.shared_tier ? [{ url: "shared tier (published splits)", ...answer.shared_tier }, ...answer.indexers] : answer.indexers;
    parts.push(el("h2", "Indexers"), el("table#indexers.rows", el("thead", el("tr", ["indexer", "answered", "docs"].map((h) => el("th", h)))), el("tbody", sources.map((i) => el("tr", { class: i.ok ? "ok" : "down" }, el("td", i.url), el("td", i.ok ? "yes" : "no"), el("td.n", i.ok ? num(i.docs) : "–"))))));
  } else {
    parts.push(el("p.muted", "This server indexes its own data (standalone or indexer)."));
  }
  main.replaceChildren(...parts);
}
