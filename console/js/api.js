// The console's only way to the server: the public HTTP API, with the session's bearer token
// in the Authorization header (never in a URL). A 401 asks for a token and retries.

const KEY = "trawl.token";

export const token = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An error answered by the server: its status, code and message from the JSON envelope. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let pending = null;

/** Shows the token dialog (once for every caller waiting) and resolves when a token is entered. */
export function askToken(reason) {
  if (pending) return pending;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const error = document.getElementById("token-error");
  error.hidden = !reason;
  error.textContent = reason || "";
  input.value = "";
  pending = new Promise((resolve) => {
    const done = (e) => {
      e.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      token.set(t);
      form.removeEventListener("submit", done);
      dialog.close();
      pending = null;
      document.getElementById("signout").hidden = false;
      resolve(t);
    };
    form.addEventListener("submit", done);
    dialog.addEventListener("cancel", (e) => e.preventDefault());
    dialog.showModal();
    input.focus();
  });
  return pending;
}

function headers(extra) {
  const h = new Headers(extra || {});
  const t = token.get();
  if (t) h.set("Authorization", `Bearer ${t}`);
  return h;
}

/** A fetch that answers the response; a 401 asks for a token and tries again. */
export async function raw(path, init = {}) {
  for (;;) {
    const res = await fetch(path, { ...init, headers: headers(init.headers) });
    if (res.status !== 401) return res;
    const hadToken = !!token.get();
    token.clear();
    await askToken(hadToken ? "That token was refused." : "");
  }
}

/** A JSON request; a non-2xx answer throws an ApiError with the server's message. */
export async function api(path, { body, method, signal } = {}) {
  const init = { method: method || (body ? "POST" : "GET"), signal };
  if (body) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const res = await raw(path, init);
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const e = json && json.error;
    throw new ApiError(res.status, e ? e.code : "http_" + res.status, e ? e.message : text || res.statusText);
  }
  return json;
}

/** `?a=1&b=2` of the defined, non-empty params. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : "";
}

/**
 * Follows a Server-Sent Events endpoint with fetch (EventSource cannot send a header): calls
 * onEvent(type, data) for each event until `signal` aborts (onOpen once connected). Resolves when the stream ends.
 */
export async function sse(path, signal, onEvent, onOpen) {
  const res = await raw(path, { signal, headers: { Accept: "text/event-stream" } });
  if (!res.ok) {
    let message = res.statusText;
    try { message = (await res.json()).error.message; } catch { /* keep status text */ }
    throw new ApiError(res.status, "http_" + res.status, message);
  }
  if (onOpen) onOpen();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(type, data.join("\n"));
    }
  }
}

/** Downloads `path` as a file named `name` (through fetch, so that the token stays in a header). */
export async function download(path, name) {
  const res = await raw(path);
  if (!res.ok) {
    let message = res.statusText;
    try { message = (await res.json()).error.message; } catch { /* keep status text */ }
    throw new ApiError(res.status, "http_" + res.status, message);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
