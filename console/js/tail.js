// Live tail: the current query followed over the SSE tail endpoint, newest at the bottom,
// with pause and resume, a bounded buffer, and the rate of matching lines.

import { el, num, highlighter, STREAM_FIELDS } from "./util.js";
import { sse, qs } from "./api.js";
import { queryBox } from "./query.js";
import { patch, streamPicker } from "./app.js";
import { hitRow, filterer } from "./search.js";

/** Most lines kept on the page; older ones are dropped (and counted) as new ones come. */
const MAX_LINES = 2000;
/** Most lines held while paused; beyond it the oldest held are dropped (and counted). */
const MAX_HELD = 10000;
/** The rate is averaged over this window. */
const RATE_WINDOW_MS = 10000;

export async function tailView(main, state, signal) {
  const stream = state.stream || "logs";
  const q = state.q || "";
  const list = el("div#tail.hits.tail");
  const status = el("span#tail-status.muted", "connecting…");
  const rateEl = el("span#tail-rate.total", "0.0 lines/s");
  const countEl = el("span#tail-count.muted", "");
  let paused = false;
  let held = [];
  let shown = 0;
  let dropped = 0;
  const arrivals = [];
  const re = highlighter(q);
  const onFilter = filterer({ ...state, view: "tail" });
  const pause = el("button#tail-pause", {
    type: "button",
    onclick: () => {
      paused = !paused;
      pause.textContent = paused ? "resume" : "pause";
      if (!paused) {
        for (const h of held) add(h);
        held = [];
      }
      update();
    },
  }, "pause");
  const clear = el("button", { type: "button", onclick: () => { list.replaceChildren(); shown = 0; update(); } }, "clear");
  main.replaceChildren(
    el("div.toolbar", streamPicker(state, [], (s) => patch({ stream: s })), queryBox({ value: q, fields: () => STREAM_FIELDS[stream] || [], values: async () => [], onSubmit: (text) => patch({ q: text }) })),
    el("div.toolbar", pause, clear, status, el("span.spacer"), countEl, rateEl),
    list,
  );
  const update = () => {
    const now = Date.now();
    while (arrivals.length && arrivals[0] < now - RATE_WINDOW_MS) arrivals.shift();
    rateEl.textContent = `${(arrivals.length / (RATE_WINDOW_MS / 1000)).toFixed(1)} lines/s`;
    countEl.textContent = `${num(shown)} shown` + (held.length ? `, ${num(held.length)} held` : "") + (dropped ? `, ${num(dropped)} dropped from view` : "");
  };
  const atBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const add = (hit) => {
    const stick = atBottom();
    list.append(hitRow(stream, hit, re, onFilter));
    shown++;
    while (list.childElementCount > MAX_LINES) {
      list.firstElementChild.remove();
      dropped++;
      shown--;
    }
    if (stick) list.scrollTop = list.scrollHeight;
  };
  const timer = setInterval(update, 1000);
  signal.addEventListener("abort", () => clearInterval(timer));
  try {
    await sse(`/api/v1/${encodeURIComponent(stream)}/tail${qs({ q })}`, signal, (type, data) => {
      if (type === "warning") {
        status.textContent = data;
        return;
      }
      if (type !== "message") return;
      let hit;
      try { hit = JSON.parse(data); } catch { return; }
      arrivals.push(Date.now());
      if (paused) {
        held.push(hit);
        if (held.length > MAX_HELD) {
          held.shift();
          dropped++;
        }
      } else add(hit);
      update();
    }, () => { status.textContent = "following"; });
    status.textContent = "ended";
  } catch (e) {
    if (e.name === "AbortError") return;
    status.textContent = "";
    main.append(el("p.error", e.message));
  }
}
