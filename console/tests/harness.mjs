// The test harness of the console's browser tests and first-load measurement: starts the
// real `trawl` binary on port 0, waits on conditions with a bounded deadline, ingests and
// searches over the API.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const BIN = process.env.CONSOLE_TRAWL_BIN || join(process.env.CARGO_TARGET_DIR || "target", "debug", "trawl");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
/** Bound of every wait on the page or the server (a loaded two-core machine). */
export const DEADLINE_MS = 20000;

const servers = [];

/** This process's environment without `TRAWL_*` (configuration overrides to the server). */
function serverEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("TRAWL_")));
}

/** Starts `trawl standalone` on port 0 with `config`; resolves with its base URL. */
export async function startTrawl(config) {
  const dir = mkdtempSync(join(tmpdir(), "trawl-console-"));
  writeFileSync(join(dir, "trawl.toml"), `${config}\n[collector]\nenabled = false\n`);
  const child = spawn(BIN, ["standalone", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "data"), "--config", join(dir, "trawl.toml")], { stdio: ["ignore", "pipe", "pipe"], env: serverEnv() });
  let log = "";
  child.stderr.on("data", (d) => { log += d; });
  servers.push({ child, dir });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`trawl did not start:\n${log}`)), DEADLINE_MS);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[\d.:]+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on("exit", (code) => reject(new Error(`trawl exited with ${code}:\n${log}`)));
  });
  await until("ready", async () => (await fetch(`${url}/health/ready`)).ok);
  return url;
}

/** Polls `cond` until it is truthy; fails after `ms`. */
export async function until(what, cond, ms = DEADLINE_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond().catch(() => false);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const auth = (token) => (token ? { Authorization: `Bearer ${token}` } : {});

export async function ingest(url, stream, records, token) {
  const res = await fetch(`${url}/api/v1/${stream}/ingest`, { method: "POST", headers: auth(token), body: records.map((r) => JSON.stringify(r)).join("\n") + "\n" });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.accepted, records.length, JSON.stringify(body));
}

export async function search(url, stream, body, token) {
  const res = await fetch(`${url}/api/v1/${stream}/search`, { method: "POST", headers: { "Content-Type": "application/json", ...auth(token) }, body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  return res.json();
}

/** Kills every server started and removes its directory. */
export function stopAll() {
  for (const { child, dir } of servers.splice(0)) {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}
