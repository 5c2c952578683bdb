// The console's shell: the state of every view lives in the URL (query, range, filters), so
// that a link shows the same thing and back and forward work; this module reads it, renders
// the view, and offers the controls the views share (stream and range pickers).

import { el, RELATIVE, resolveRange, fromMillis, toNanos } from "./util.js";
import { token } from "./api.js";
import { searchView, contextView } from "./search.js";
import { tailView } from "./tail.js";
import { auditView, auditEventsView } from "./audit.js";
import { overviewView } from "./overview.js";

const VIEWS = { search: searchView, context: contextView, tail: tailView, audit: auditView, "audit-events": auditEventsView, overview: overviewView };
const NAV_OF = { context: "search", "audit-events": "audit" };

/** The current state: the URL's query parameters as an object. */
export function current() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

/** A URL of a state (empty values left out). */
export function href(state) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  return `/?${p}`;
}

/** Goes to a new state: a history entry (or a replaced one), then renders it. */
export function navigate(state, { replace = false } = {}) {
  const url = href(state);
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

/** Changes some keys of the current state. */
export const patch = (changes, options) => navigate({ ...current(), ...changes }, options);

/** The stream picker: the streams the server has (with `logs` and `audit` always offered). */
export function streamPicker(state, streams, onChange) {
  const names = [...new Set(["logs", "audit", ...streams])];
  const sel = el("select#stream", { "aria-label": "stream", onchange: () => onChange(sel.value) }, names.map((n) => el("option", { value: n, selected: n === (state.stream || "logs") }, n)));
  return sel;
}

/** Relative ranges as buttons, and an absolute range (local time) to type in. */
export function rangePicker(state) {
  const r = resolveRange(state);
  const local = (ms) => {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 19);
  };
  const from = el("input#range-from", { type: "datetime-local", step: "1", value: local(r.startMs), "aria-label": "from" });
  const to = el("input#range-to", { type: "datetime-local", step: "1", value: local(r.endMs), "aria-label": "to" });
  const absolute = !!(state.start && state.end);
  return el(
    "div.range",
    RELATIVE.map((rel) => el("button.rel", { type: "button", class: !absolute && (state.range || "15m") === rel ? "rel on" : "rel", dataset: { range: rel }, onclick: () => patch({ range: rel, start: "", end: "", cursor: "" }) }, rel)),
    from,
    "→",
    to,
    el("button", {
      type: "button",
      id: "range-apply",
      onclick: () => {
        const a = new Date(from.value).getTime();
        const b = new Date(to.value).getTime();
        if (isNaN(a) || isNaN(b) || a >= b) return alert("the range needs a start before its end");
        patch({ start: fromMillis(a), end: fromMillis(b), range: "" });
      },
    }, "apply"),
  );
}

/** Zoom to [a, b) in milliseconds (a drag on a chart, a bar clicked). */
export function zoomTo(a, b) {
  patch({ start: fromMillis(a), end: fromMillis(b), range: "" });
}

export const nanosOf = toNanos;

let controller = null;

/** Renders the view of the current URL; the previous view's requests and streams are aborted. */
export async function render() {
  if (controller) controller.abort();
  controller = new AbortController();
  const state = current();
  const name = VIEWS[state.view] ? state.view : "search";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("on", a.dataset.view === (NAV_OF[name] || name));
  const main = document.getElementById("main");
  main.dataset.view = name;
  try {
    await VIEWS[name](main, state, controller.signal);
  } catch (e) {
    if (e.name === "AbortError") return;
    main.append(el("p.error", String(e.message || e)));
  }
}

document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest("a[href^='/?'], a[href='/']");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || a.target) return;
  e.preventDefault();
  const url = new URL(a.href);
  history.pushState(null, "", url.pathname + url.search);
  render();
});
window.addEventListener("popstate", render);
const signout = document.getElementById("signout");
signout.hidden = !token.get();
signout.addEventListener("click", () => {
  token.clear();
  signout.hidden = true;
  render();
});
render();
