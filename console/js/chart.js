// A small SVG bar chart over time: bars stacked (or side by side) by series, a time axis,
// drag across it to choose a range, click a bar to choose its bucket. No library.

import { showTime } from "./util.js";

const NS = "http://www.w3.org/2000/svg";
const svgEl = (name, attrs = {}) => {
  const n = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  return n;
};

/** Nice bucket widths in milliseconds, smallest first. */
const STEPS = [1e3, 2e3, 5e3, 10e3, 30e3, 60e3, 120e3, 300e3, 600e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3, 7 * 86400e3];

/** The bucket width for a span, aiming at about `bars` bars. */
export function intervalFor(spanMs, bars = 60) {
  return STEPS.find((s) => spanMs / s <= bars) || STEPS[STEPS.length - 1];
}

/** `fixed_interval` text of a width in milliseconds. */
export function intervalText(ms) {
  if (ms % 86400e3 === 0) return `${ms / 86400e3}d`;
  if (ms % 3600e3 === 0) return `${ms / 3600e3}h`;
  if (ms % 60e3 === 0) return `${ms / 60e3}m`;
  return `${ms / 1e3}s`;
}

/**
 * Draws the chart into `host`.
 * buckets: [{start: ms, end: ms, parts: {series: count}, total}]; series: names in stack order;
 * opts: {startMs, endMs, grouped, onZoom(startMs, endMs), onBar(bucket), label}.
 */
export function barChart(host, buckets, series, opts) {
  host.replaceChildren();
  const W = Math.max(host.clientWidth || 800, 300);
  const H = opts.height || 140;
  const pad = { l: 44, r: 8, t: 8, b: 20 };
  const iw = W - pad.l - pad.r;
  const ih = H - pad.t - pad.b;
  const t0 = opts.startMs;
  const t1 = Math.max(opts.endMs, t0 + 1);
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * iw;
  const max = Math.max(1, ...buckets.map((b) => (opts.grouped ? Math.max(0, ...series.map((s) => b.parts[s] || 0)) : b.total)));
  const y = (v) => pad.t + ih - (v / max) * ih;
  const svg = svgEl("svg", { width: W, height: H, class: "chart", role: "img", "aria-label": opts.label || "histogram" });
  svg.dataset.start = String(t0);
  svg.dataset.end = String(t1);
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    const gy = y(v);
    svg.append(svgEl("line", { x1: pad.l, x2: W - pad.r, y1: gy, y2: gy, class: "grid" }));
    const label = svgEl("text", { x: pad.l - 4, y: gy + 4, class: "axis", "text-anchor": "end" });
    label.textContent = String(v);
    svg.append(label);
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    const label = svgEl("text", { x: x(t), y: H - 4, class: "axis", "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" });
    label.textContent = showTime(new Date(t).toISOString()).slice(t1 - t0 > 86400e3 ? 5 : 11, 19);
    svg.append(label);
  }
  for (const b of buckets) {
    const bx0 = x(Math.max(b.start, t0));
    const bx1 = x(Math.min(b.end, t1));
    const bw = Math.max(1, bx1 - bx0 - 1);
    const g = svgEl("g", { class: "bar" });
    g.dataset.count = String(b.total);
    g.dataset.start = String(b.start);
    g.dataset.end = String(b.end);
    const title = svgEl("title");
    title.textContent = `${showTime(new Date(b.start).toISOString())}  ${b.total} — ` + series.filter((s) => b.parts[s]).map((s) => `${s}: ${b.parts[s]}`).join(", ");
    g.append(title);
    g.append(svgEl("rect", { x: bx0, y: pad.t, width: bw, height: ih, class: "hit" }));
    let acc = 0;
    series.forEach((s, i) => {
      const v = b.parts[s] || 0;
      if (!v) return;
      if (opts.grouped) {
        const w = bw / series.length;
        g.append(svgEl("rect", { x: bx0 + i * w, y: y(v), width: Math.max(1, w - 0.5), height: y(0) - y(v), class: `s s-${s}` }));
      } else {
        g.append(svgEl("rect", { x: bx0, y: y(acc + v), width: bw, height: y(acc) - y(acc + v), class: `s s-${s}` }));
        acc += v;
      }
    });
    svg.append(g);
  }
  const sel = svgEl("rect", { class: "selection", y: pad.t, height: ih, width: 0, x: 0, visibility: "hidden" });
  svg.append(sel);
  const tAt = (px) => t0 + ((Math.min(Math.max(px, pad.l), W - pad.r) - pad.l) / iw) * (t1 - t0);
  let from = null;
  const local = (e) => e.clientX - svg.getBoundingClientRect().left;
  svg.addEventListener("mousedown", (e) => {
    from = local(e);
    e.preventDefault();
  });
  svg.addEventListener("mousemove", (e) => {
    if (from === null) return;
    const to = local(e);
    sel.setAttribute("x", Math.min(from, to));
    sel.setAttribute("width", Math.abs(to - from));
    sel.setAttribute("visibility", "visible");
  });
  const finish = (e) => {
    if (from === null) return;
    const to = local(e);
    const a = from;
    from = null;
    sel.setAttribute("visibility", "hidden");
    if (Math.abs(to - a) > 4) {
      if (opts.onZoom) opts.onZoom(Math.round(tAt(Math.min(a, to))), Math.round(tAt(Math.max(a, to))));
      return;
    }
    const bar = e.target.closest && e.target.closest("g.bar");
    if (bar && opts.onBar) opts.onBar({ start: Number(bar.dataset.start), end: Number(bar.dataset.end) });
  };
  svg.addEventListener("mouseup", finish);
  svg.addEventListener("mouseleave", () => {
    from = null;
    sel.setAttribute("visibility", "hidden");
  });
  host.append(svg);
  const legend = document.createElement("div");
  legend.className = "legend";
  for (const s of series) {
    const item = document.createElement("span");
    item.innerHTML = `<i class="s-${s}"></i>`;
    item.append(s);
    legend.append(item);
  }
  host.append(legend);
}

/**
 * Buckets of an Elasticsearch-style date_histogram answer, split by a terms sub-aggregation
 * named `by` (documents without the term count as `other`). Bucket keys are milliseconds.
 */
export function bucketsOf(histogram, width, by, known) {
  return ((histogram && histogram.buckets) || []).map((b) => {
    const parts = {};
    let sum = 0;
    for (const t of (b[by] && b[by].buckets) || []) {
      const name = known.includes(String(t.key)) ? String(t.key) : "other";
      parts[name] = (parts[name] || 0) + t.doc_count;
      sum += t.doc_count;
    }
    if (b.doc_count > sum) parts.other = (parts.other || 0) + b.doc_count - sum;
    return { start: b.key, end: b.key + width, parts, total: b.doc_count };
  });
}
