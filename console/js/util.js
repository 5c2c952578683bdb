// Small helpers shared by the views: DOM building, time ranges in nanoseconds, formatting.

/** Builds an element: el("div.cls#id", {attr: v, onclick: f}, child, "text", [children]). */
export function el(spec, attrs, ...children) {
  const m = spec.match(/^([a-z0-9]+)?((?:[.#][\w-]+)*)$/i);
  const node = document.createElement((m && m[1]) || "div");
  for (const part of ((m && m[2]) || "").match(/[.#][\w-]+/g) || []) {
    if (part[0] === ".") node.classList.add(part.slice(1));
    else node.id = part.slice(1);
  }
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : String(c));
  }
}

/** Nanoseconds since the epoch (BigInt) of an RFC 3339 timestamp with up to 9 fractional digits. */
export function toNanos(text) {
  const m = String(text).match(/^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/);
  if (!m) return BigInt(Date.parse(text)) * 1000000n;
  const secs = BigInt(Date.parse(m[1] + m[3])) / 1000n;
  return secs * 1000000000n + BigInt((m[2] || "").padEnd(9, "0"));
}

/** RFC 3339 in UTC with nine fractional digits, from nanoseconds (BigInt). */
export function fromNanos(ns) {
  const secs = ns / 1000000000n;
  let frac = ns % 1000000000n;
  let s = secs;
  if (frac < 0n) { frac += 1000000000n; s -= 1n; }
  const base = new Date(Number(s) * 1000).toISOString().slice(0, 19);
  return `${base}.${frac.toString().padStart(9, "0")}Z`;
}

export const fromMillis = (ms) => fromNanos(BigInt(Math.round(ms)) * 1000000n);

/** Relative ranges offered in the range picker. */
export const RELATIVE = ["15m", "1h", "24h", "7d"];

const UNIT_MS = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 };

/** Milliseconds of a duration like `15m`, or NaN. */
export function durationMs(text) {
  const m = String(text || "").match(/^(\d+)([smhdw])$/);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
}

/**
 * The concrete bounds of a state's range, as RFC 3339 strings and milliseconds: a relative
 * range (`range=15m`) ends now; an absolute one has `start` and `end`.
 */
export function resolveRange(state, now = Date.now()) {
  if (state.start && state.end) {
    return { start: state.start, end: state.end, startMs: Number(toNanos(state.start) / 1000000n), endMs: Number(toNanos(state.end) / 1000000n) };
  }
  const span = durationMs(state.range || "15m") || durationMs("15m");
  return { start: fromMillis(now - span), end: fromMillis(now), startMs: now - span, endMs: now };
}

/** A timestamp for display: local date and time with milliseconds. */
export function showTime(text) {
  const d = new Date(String(text).replace(/(\.\d{3})\d*/, "$1"));
  if (isNaN(d)) return String(text);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** A number with thousands separators. */
export const num = (n) => (n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US"));

/** Bytes in KiB, MiB, GiB. */
export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n || 0);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** A value quoted for the query grammar when it needs to be (spaces, colons, quotes, ...). */
export function quote(value) {
  const s = String(value);
  return /^[\w.\-/@]+$/.test(s) && !/^(AND|OR|NOT|TO)$/.test(s) ? s : `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** `q` with `clause` added (AND is the default operator); `*` and empty become just the clause. */
export function addClause(q, clause) {
  const t = (q || "").trim();
  return !t || t === "*" ? clause : `${t} ${clause}`;
}

/** Level names in the order they stack, and the class that colours each. */
export const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "other"];

/** Regular expression of the free-text terms of a query, to highlight them in messages. */
export function highlighter(q) {
  const terms = [];
  const text = String(q || "");
  for (const m of text.matchAll(/(?:^|[\s(])(-?)(?:(message|[\w.]*):)?("([^"]*)"|[^\s()"]+)/g)) {
    if (m[1] === "-") continue;
    if (m[2] !== undefined && m[2] !== "message") continue;
    const word = m[4] !== undefined ? m[4] : m[3];
    if (!word || /^(AND|OR|NOT|\*)$/.test(word) || word.startsWith("[")) continue;
    terms.push(word.replace(/\*$/, ""));
  }
  const parts = terms.filter((t) => t.length > 0).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return parts.length ? new RegExp(`(${parts.join("|")})`, "gi") : null;
}

/** A text node list with the matches of `re` wrapped in <mark>. */
export function highlight(text, re) {
  const s = String(text ?? "");
  if (!re) return [s];
  const out = [];
  let last = 0;
  for (const m of s.matchAll(re)) {
    if (!m[0]) continue;
    out.push(s.slice(last, m.index), el("mark", m[0]));
    last = m.index + m[0].length;
  }
  out.push(s.slice(last));
  return out;
}

/** Fields of each built-in stream, for suggestions. */
export const STREAM_FIELDS = {
  logs: ["timestamp", "cluster", "node", "namespace", "pod", "pod_uid", "container", "container_id", "image", "labels", "stream", "level", "message", "attributes", "file", "offset"],
  audit: ["timestamp", "stage_timestamp", "latency_ms", "audit_id", "stage", "level", "verb", "request_uri", "user", "user_groups", "user_uid", "impersonated_user", "source_ips", "user_agent", "api_group", "api_version", "resource", "subresource", "namespace", "name", "status_code", "status_message", "decision", "reason", "annotations", "request_object", "response_object", "cluster"],
  events: ["timestamp", "first_seen", "cluster", "type", "reason", "message", "namespace", "kind", "name", "uid", "field_path", "related_kind", "related_name", "reporting_controller", "reporting_instance", "action", "node", "count", "event_uid", "event_name", "resource_version"],
  journal: ["timestamp", "cluster", "node", "unit", "identifier", "pid", "priority", "level", "message", "boot_id", "cursor"],
};

/** Facet fields per stream (keyword fast fields). */
export const FACETS = {
  logs: ["namespace", "pod", "container", "node", "level", "cluster"],
  audit: ["namespace", "user", "verb", "resource", "status_code", "cluster"],
  events: ["namespace", "type", "reason", "kind", "node", "cluster"],
  journal: ["node", "unit", "level", "cluster"],
};

/** Keyword fields that take value suggestions. */
export const KEYWORDS = new Set(["cluster", "node", "namespace", "pod", "container", "image", "stream", "level", "stage", "verb", "user", "resource", "subresource", "decision", "api_group", "type", "reason", "kind", "reporting_controller", "unit", "identifier", "status_code", "source_ips", "user_agent", "name"]);
