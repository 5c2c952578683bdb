// Measures the console's first load on localhost: the bytes the browser fetches (as sent, so
// gzipped) and the time from navigation to the first hit on the page, over `RUNS` fresh
// loads (no cache) of a server holding `DOCS` records of the last 15 minutes.
//
//   CONSOLE_TRAWL_BIN=$CARGO_TARGET_DIR/release/trawl node first-load.mjs

import pw from "playwright-core";
import { CHROMIUM, DEADLINE_MS, startTrawl, until, ingest, search, stopAll } from "./harness.mjs";

const RUNS = Number(process.env.RUNS || 20);
const DOCS = Number(process.env.DOCS || 100000);

const url = await startTrawl("");
try {
  const now = Date.now();
  const levels = ["info", "warn", "error", "debug"];
  for (let from = 0; from < DOCS; from += 10000) {
    const batch = [];
    for (let i = from; i < Math.min(DOCS, from + 10000); i++) {
      batch.push({ timestamp: new Date(now - 890000 + Math.floor((i * 880000) / DOCS)).toISOString(), namespace: `ns-${i % 37}`, pod: `pod-${i % 800}`, container: `c-${i % 3}`, node: `node-${i % 24}`, cluster: "bench", level: levels[i % 4], message: `request ${i} served in ${i % 97} ms` });
    }
    await ingest(url, "logs", batch);
  }
  await until("records searchable", async () => (await search(url, "logs", { q: "*", limit: 0 })).total === DOCS, 120000);
  const browser = await pw.chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
  const times = [];
  let bytes = 0;
  let requests = 0;
  for (let run = 0; run < RUNS; run++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    let got = 0;
    let count = 0;
    cdp.on("Network.loadingFinished", (e) => { got += e.encodedDataLength; count++; });
    await page.goto(url);
    await page.waitForSelector("#hits .hit", { timeout: DEADLINE_MS });
    times.push(await page.evaluate(() => performance.now()));
    await page.waitForLoadState("networkidle");
    bytes = got;
    requests = count;
    await context.close();
  }
  await browser.close();
  times.sort((a, b) => a - b);
  const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  console.log(`console first_load_bytes ${bytes} B (${requests} requests, gzip)`);
  console.log(`console first_hits_p50 ${q(0.5).toFixed(1)} ms   first_hits_p99 ${q(0.99).toFixed(1)} ms   (${RUNS} loads, ${DOCS} records in the last 15 minutes)`);
} finally {
  stopAll();
}
