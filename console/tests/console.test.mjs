// Browser tests of the web console: Debian's chromium driven by playwright-core against the
// real debug `trawl` binary, with records ingested through the API by the tests themselves.
// Every wait is on a condition with a bounded deadline. Screenshots of each view go to
// $CONSOLE_SHOTS (default /var/tmp/console-shots).
//
//   CONSOLE_TRAWL_BIN=target/debug/trawl CHROMIUM=/usr/bin/chromium node --test console.test.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pw from "playwright-core";
import { CHROMIUM, DEADLINE_MS, startTrawl, until, ingest, search, stopAll } from "./harness.mjs";

const { chromium } = pw;
const SHOTS = process.env.CONSOLE_SHOTS || "/var/tmp/console-shots";
/** The bound: a line ingested while the tail is open shows within 2 s. */
const TAIL_MS = 2000;

const ADMIN = "admin-token-0123456789abcdef0123";
const READ_PAYMENTS = "read-payments-0123456789abcdef01";

let browser;

const iso = (ms, extraNanos = 0) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, (_, f) => `.${f}${String(extraNanos).padStart(6, "0")}Z`);
const NOW = Date.now();
const LEVELS = ["info", "warn", "error", "debug", "info"];

/** 120 lines over the last 10 minutes: two namespaces, three pods, five levels. */
const LOGS = Array.from({ length: 120 }, (_, i) => ({
  timestamp: iso(NOW - 600000 + i * 5000, i),
  namespace: i % 3 === 0 ? "payments" : "shop",
  pod: `web-${i % 4}`,
  container: "app",
  node: "node-1",
  cluster: "test",
  level: LEVELS[i % 5],
  message: i % 7 === 0 ? `request ${i} failed: connection reset by peer` : `request ${i} served in ${i % 13} ms`,
}));
/** 30 lines of one pod and container, one a second, for the context view. */
const CONTEXT = Array.from({ length: 30 }, (_, i) => ({
  timestamp: iso(NOW - 300000 + i * 1000, 7),
  namespace: "batch",
  pod: "ctx-pod",
  container: "worker",
  level: "info",
  message: `ctx line ${String(i).padStart(2, "0")}`,
}));
/** The same pod's other container, interleaved: context must leave it out. */
const OTHER_CONTAINER = Array.from({ length: 10 }, (_, i) => ({
  timestamp: iso(NOW - 300000 + i * 1000 + 500, 0),
  namespace: "batch",
  pod: "ctx-pod",
  container: "sidecar",
  level: "info",
  message: `sidecar line ${i}`,
}));

function auditEvent(i, user, verb, resource, code, ns) {
  const t = new Date(NOW - 3600000 + i * 60000).toISOString().replace("Z", "000Z");
  return {
    kind: "Event", apiVersion: "audit.k8s.io/v1", level: "RequestResponse", auditID: `audit-${i}`, stage: "ResponseComplete",
    verb, requestURI: `/api/v1/namespaces/${ns}/${resource}/x${i}`, user: { username: user }, sourceIPs: ["10.0.0.9"],
    objectRef: { resource, namespace: ns, name: `x${i}`, apiVersion: "v1" }, responseStatus: { code },
    requestObject: { kind: "DeleteOptions", propagationPolicy: "Background" }, responseObject: { kind: "Status", code },
    requestReceivedTimestamp: t, stageTimestamp: t,
  };
}
/** Forbidden: mallory × get secrets 3 times, mallory × delete pods twice; allowed creates. */
const AUDIT = [
  ...[0, 1, 2].map((i) => auditEvent(i, "mallory", "get", "secrets", 403, "payments")),
  ...[3, 4].map((i) => auditEvent(i, "mallory", "delete", "pods", 403, "shop")),
  ...[5, 6, 7, 8].map((i) => auditEvent(i, "alice", "create", "configmaps", 201, "shop")),
];

let url;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
  url = await startTrawl("");
  await ingest(url, "logs", [...LOGS, ...CONTEXT, ...OTHER_CONTAINER]);
  await ingest(url, "audit", AUDIT);
  const all = LOGS.length + CONTEXT.length + OTHER_CONTAINER.length;
  await until("records searchable", async () => (await search(url, "logs", { q: "*", limit: 0 })).total === all);
  await until("audit searchable", async () => (await search(url, "audit", { q: "*", limit: 0 })).total === AUDIT.length);
});

after(async () => {
  if (browser) await browser.close();
  stopAll();
});

async function page(t) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  const p = await context.newPage();
  const errors = [];
  p.on("pageerror", (e) => errors.push(e.message));
  t.after(async () => {
    await context.close();
    assert.deepEqual(errors, [], "no script errors on the page");
  });
  return p;
}

const shot = (p, name) => p.screenshot({ path: join(SHOTS, `${name}.png`) });

/** The total the page shows, once it shows one. */
async function shownTotal(p, selector = "#total") {
  await p.waitForSelector(`${selector}[data-total]`, { timeout: DEADLINE_MS });
  return Number(await p.getAttribute(selector, "data-total"));
}

/** Sum of the histogram's bars and the range it covers. */
async function bars(p) {
  return p.evaluate(() => {
    const host = document.querySelector("#histogram");
    const sum = [...host.querySelectorAll("g.bar")].reduce((s, g) => s + Number(g.dataset.count), 0);
    return { sum, start: host.dataset.start, end: host.dataset.end };
  });
}

test("opening the console shows the newest records of the last 15 minutes, and the bars add up to the API's total", async (t) => {
  const p = await page(t);
  await p.goto(url);
  const total = await shownTotal(p);
  const { sum, start, end } = await bars(p);
  const api = await search(url, "logs", { q: "*", start, end, limit: 0 });
  assert.equal(total, api.total);
  assert.equal(sum, api.total);
  assert.equal(total, LOGS.length + CONTEXT.length + OTHER_CONTAINER.length);
  const times = await p.$$eval("#hits .hit", (rows) => rows.map((r) => r.dataset.ts));
  assert.equal(times.length, 50);
  assert.deepEqual(times, [...times].sort().reverse(), "newest first");
  await shot(p, "search");
  // Load more continues with the cursor: 100 distinct rows, still newest first.
  await p.click("#load-more");
  await p.waitForFunction(() => document.querySelectorAll("#hits .hit").length === 100, null, { timeout: DEADLINE_MS });
  const more = await p.$$eval("#hits .hit", (rows) => rows.map((r) => r.dataset.ts));
  assert.equal(new Set(more).size, 100);
  assert.deepEqual(more, [...more].sort().reverse());
});

test("dragging across the histogram zooms: the range and the hits change; back returns", async (t) => {
  const p = await page(t);
  await p.goto(url);
  const before = await shownTotal(p);
  const box = await p.locator("#histogram svg").boundingBox();
  // From 60% to 85% of the plot's width.
  await p.mouse.move(box.x + box.width * 0.6, box.y + 40);
  await p.mouse.down();
  await p.mouse.move(box.x + box.width * 0.72, box.y + 40, { steps: 4 });
  await p.mouse.move(box.x + box.width * 0.85, box.y + 40, { steps: 4 });
  await p.mouse.up();
  await p.waitForURL(/start=/, { timeout: DEADLINE_MS });
  const params = new URL(p.url()).searchParams;
  const start = params.get("start");
  const end = params.get("end");
  await p.waitForFunction((s) => document.querySelector("#histogram")?.dataset.start === s, start, { timeout: DEADLINE_MS });
  const total = await shownTotal(p);
  const api = await search(url, "logs", { q: "*", start, end, limit: 0 });
  assert.equal(total, api.total);
  assert.ok(total > 0 && total < before, `zoomed total ${total} of ${before}`);
  assert.equal((await bars(p)).sum, total);
  const times = await p.$$eval("#hits .hit", (rows) => rows.map((r) => r.dataset.ts));
  assert.ok(times.length > 0 && times.every((ts) => ts >= start && ts < end), "every hit inside the zoomed range");
  await shot(p, "search-zoomed");
  await p.goBack();
  await p.waitForFunction(() => !new URLSearchParams(location.search).get("start"), null, { timeout: DEADLINE_MS });
  await p.waitForFunction((n) => document.querySelector("#total")?.dataset.total === String(n), before, { timeout: DEADLINE_MS });
});

test("a facet click filters by its value, and the query box suggests fields and values", async (t) => {
  const p = await page(t);
  await p.goto(url);
  await shownTotal(p);
  await p.click('#facets .facet[data-field="namespace"] .facet-value[data-value="payments"] a');
  await p.waitForURL(/q=namespace%3Apayments/, { timeout: DEADLINE_MS });
  await p.waitForFunction(() => document.querySelector("#q").value === "namespace:payments", null, { timeout: DEADLINE_MS });
  const total = await shownTotal(p);
  assert.equal(total, LOGS.filter((r) => r.namespace === "payments").length);
  const facet = await p.$$eval('#facets .facet[data-field="namespace"] .facet-value', (li) => li.map((x) => x.dataset.value));
  assert.deepEqual(facet, ["payments"]);
  const sources = await p.$$eval("#hits .hit .src", (s) => s.map((x) => x.textContent));
  assert.ok(sources.length > 0 && sources.every((s) => s.startsWith("payments")));
  await shot(p, "search-facet");
  // Suggestions: a field name, then that field's values.
  await p.fill("#q", "");
  await p.type("#q", "nam");
  await p.waitForSelector('ul.suggest li[data-kind="field"]', { timeout: DEADLINE_MS });
  assert.ok((await p.$$eval("ul.suggest li", (li) => li.map((x) => x.textContent))).includes("namespace"));
  await p.type("#q", "espace:sh");
  await p.waitForFunction(() => [...document.querySelectorAll('ul.suggest li[data-kind="value"]')].some((li) => li.firstChild.textContent === "shop"), null, { timeout: DEADLINE_MS });
  await shot(p, "search-suggest");
  // A value's "−" in an expanded row adds its negation.
  await p.keyboard.press("Escape");
  await p.goto(`${url}/?view=search&q=level%3Aerror`);
  await shownTotal(p);
  await p.click("#hits .hit >> nth=0");
  await p.hover('#hits .detail .leaf:has(.val[data-field="pod"])');
  const pod = await p.textContent('#hits .detail .val[data-field="pod"]');
  await p.click('#hits .detail .leaf:has(.val[data-field="pod"]) button.neg');
  await p.waitForFunction((v) => document.querySelector("#q").value === `level:error -pod:${v}`, pod, { timeout: DEADLINE_MS });
  const negated = await shownTotal(p);
  assert.equal(negated, LOGS.filter((r) => r.level === "error" && r.pod !== pod).length);
});

test("context shows the lines before and after a hit from the same pod and container, in order, paged both ways", async (t) => {
  const p = await page(t);
  await p.goto(`${url}/?view=search&q=${encodeURIComponent('"ctx line 15"')}`);
  assert.equal(await shownTotal(p), 1);
  await p.click("#hits .hit >> nth=0");
  await p.getByRole("link", { name: "context" }).click();
  await p.waitForSelector("#context .hit.anchor", { timeout: DEADLINE_MS });
  const messages = () => p.$$eval("#context .hit .msg", (m) => m.map((x) => x.textContent));
  const line = (i) => `ctx line ${String(i).padStart(2, "0")}`;
  assert.deepEqual(await messages(), Array.from({ length: 30 }, (_, i) => line(i)));
  assert.equal(await p.textContent("#context .hit.anchor .msg"), line(15));
  await shot(p, "context");
  // Five lines a page: older and newer page on from the edges.
  const u = new URL(p.url());
  u.searchParams.set("lines", "5");
  await p.goto(u.toString());
  await p.waitForSelector("#context .hit.anchor", { timeout: DEADLINE_MS });
  assert.deepEqual(await messages(), Array.from({ length: 11 }, (_, i) => line(10 + i)));
  await p.click("#older");
  await p.waitForFunction(() => document.querySelectorAll("#context .hit").length === 16, null, { timeout: DEADLINE_MS });
  await p.click("#newer");
  await p.waitForFunction(() => document.querySelectorAll("#context .hit").length === 21, null, { timeout: DEADLINE_MS });
  assert.deepEqual(await messages(), Array.from({ length: 21 }, (_, i) => line(5 + i)));
});

test("live tail shows lines ingested during the test within 2 s, and pause holds them", async (t) => {
  const p = await page(t);
  await p.goto(`${url}/?view=tail&q=namespace%3Atailtest`);
  await p.waitForFunction(() => document.querySelector("#tail-status")?.textContent === "following", null, { timeout: DEADLINE_MS });
  const lines = (n, from) => Array.from({ length: n }, (_, i) => ({ namespace: "tailtest", pod: "tail-0", container: "c", level: "info", message: `tail line ${from + i}` }));
  await ingest(url, "logs", [...lines(3, 0), { namespace: "elsewhere", message: "not followed" }]);
  const acked = Date.now();
  await p.waitForFunction(() => document.querySelectorAll("#tail .hit").length === 3, null, { timeout: TAIL_MS });
  assert.ok(Date.now() - acked <= TAIL_MS);
  assert.deepEqual(await p.$$eval("#tail .hit .msg", (m) => m.map((x) => x.textContent)), ["tail line 0", "tail line 1", "tail line 2"]);
  await p.click("#tail-pause");
  await ingest(url, "logs", lines(2, 3));
  await p.waitForFunction(() => /2 held/.test(document.querySelector("#tail-count").textContent), null, { timeout: DEADLINE_MS });
  assert.equal(await p.locator("#tail .hit").count(), 3);
  await p.click("#tail-pause");
  await p.waitForFunction(() => document.querySelectorAll("#tail .hit").length === 5, null, { timeout: DEADLINE_MS });
  assert.match(await p.textContent("#tail-rate"), /^\d+\.\d lines\/s$/);
  await shot(p, "tail");
});

test("an audit report row opens exactly its count of events, with request and response objects", async (t) => {
  const p = await page(t);
  await p.goto(`${url}/?view=audit`);
  await p.waitForSelector('#audit-chart svg', { timeout: DEADLINE_MS });
  await p.waitForSelector('.card[data-report="forbidden"] tr.report-row', { timeout: DEADLINE_MS });
  assert.equal(await p.getAttribute("#audit-chart", "data-forbidden"), "5");
  assert.equal(await p.getAttribute("#audit-chart", "data-mutating"), "6");
  await shot(p, "audit");
  await p.click('.card[data-report="forbidden"] h3 a');
  await p.waitForSelector('.card.wide[data-report="forbidden"] tr.report-row', { timeout: DEADLINE_MS });
  const counts = await p.$$eval("tr.report-row", (rows) => rows.map((r) => Number(r.dataset.count)));
  assert.deepEqual(counts.sort(), [2, 3]);
  await shot(p, "audit-report");
  const row = p.locator('tr.report-row[data-count="3"]');
  await row.click();
  assert.equal(await shownTotal(p, "#events-total"), 3);
  await p.waitForFunction(() => document.querySelectorAll("#events .hit").length === 3, null, { timeout: DEADLINE_MS });
  await p.click("#events .hit >> nth=0");
  const objects = await p.$$eval("#events .event-view .object pre", (pre) => pre.map((x) => JSON.parse(x.textContent)));
  assert.deepEqual(objects, [{ kind: "DeleteOptions", propagationPolicy: "Background" }, { kind: "Status", code: 403 }]);
  await shot(p, "audit-events");
  // The filters narrow the cards.
  await p.goto(`${url}/?view=audit&user=alice`);
  await p.waitForSelector('.card[data-report="top-users"] tr.report-row', { timeout: DEADLINE_MS });
  const users = await p.$$eval('.card[data-report="top-users"] tr.report-row td[data-key="user"]', (td) => td.map((x) => x.textContent));
  assert.deepEqual(users, ["alice"]);
});

test("export downloads the current query as NDJSON, and the overview lists the streams", async (t) => {
  const p = await page(t);
  await p.goto(`${url}/?view=search&q=namespace%3Apayments`);
  const total = await shownTotal(p);
  await p.selectOption("#export-format", "ndjson");
  const [download] = await Promise.all([p.waitForEvent("download", { timeout: DEADLINE_MS }), p.click("#export")]);
  const text = readFileSync(await download.path(), "utf8").trim().split("\n");
  assert.equal(text.length, total);
  assert.ok(text.every((l) => JSON.parse(l).namespace === "payments"));
  await p.goto(`${url}/?view=overview`);
  await p.waitForSelector('#streams tr.stream[data-stream="logs"]', { timeout: DEADLINE_MS });
  const docs = await p.textContent('#streams tr.stream[data-stream="audit"] td:nth-child(2)');
  assert.equal(docs, String(AUDIT.length));
  await shot(p, "overview");
});

test("with auth on, the console asks for a token on 401, keeps it out of the URL, and a scoped token sees only its namespace", async (t) => {
  const sha = (s) => `sha256:${createHash("sha256").update(s).digest("hex")}`;
  const secured = await startTrawl(`
[[auth.tokens]]
name = "ops"
hash = "${sha(ADMIN)}"
role = "admin"

[[auth.tokens]]
name = "payments"
hash = "${sha(READ_PAYMENTS)}"
role = "read"
namespaces = ["payments"]
`);
  await ingest(secured, "logs", LOGS, ADMIN);
  await until("records searchable", async () => (await search(secured, "logs", { q: "*", limit: 0 }, ADMIN)).total === LOGS.length);
  const p = await page(t);
  await p.goto(secured);
  await p.waitForSelector("#token-dialog[open]", { timeout: DEADLINE_MS });
  await shot(p, "token-prompt");
  await p.fill("#token-input", READ_PAYMENTS);
  await p.click("#token-form button[type=submit]");
  const total = await shownTotal(p);
  assert.equal(total, LOGS.filter((r) => r.namespace === "payments").length);
  const namespaces = await p.$$eval('#facets .facet[data-field="namespace"] .facet-value', (li) => li.map((x) => x.dataset.value));
  assert.deepEqual(namespaces, ["payments"]);
  assert.ok(!p.url().includes(READ_PAYMENTS), "no token in the URL");
  assert.equal(await p.evaluate(() => sessionStorage.getItem("trawl.token")), READ_PAYMENTS);
  await shot(p, "search-scoped");
  // A new session (another context) asks again.
  const other = await browser.newContext();
  const q = await other.newPage();
  await q.goto(secured);
  await q.waitForSelector("#token-dialog[open]", { timeout: DEADLINE_MS });
  await other.close();
});
