#!/usr/bin/env python3
"""Cost of alerting: CPU seconds per evaluation round of N rules over a `logs` stream that keeps
growing, against a release `trawl standalone`.

1. Preloads the stream from a `trawl-bench generate --kind logs` corpus, timestamps rewritten to
   spread over the last `--spread-secs` (so the rules' 5-minute windows hold real data), until
   `--docs` documents or `--preload-secs` have passed (whichever first: the figure says which).
2. Keeps ingesting at `--rate-mb` MB/s, stamped now, on a thread.
   With `--settle-secs`, waits that long first (the rules' windows fill with documents stamped
   now).
3. For each rule count (rule file reloaded in place, group interval `--interval-secs`): waits one
   round, then reads the process's CPU time (/proc/<pid>/stat) and the sum of
   `trawl_alerting_rule_evaluation_duration_seconds` over `--measure-secs`. The count 0 is the
   baseline (ingest alone); the rules' cost is the difference, per round.

Usage: alerting_cost.py TRAWL_BIN CORPUS_NDJSON [--docs N] [--counts 0,10,50,100] ...
"""

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request

TS_START, TS_END = 14, 44  # `{"timestamp":"` then 30 characters of RFC 3339 with nanoseconds


def stamp(ns):
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%09dZ" % frac


def post(url, body):
    req = urllib.request.Request(url + "/api/v1/logs/ingest", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        answer = json.loads(r.read())
    return answer["accepted"]


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_sum(url, name):
    text = urllib.request.urlopen(url + "/metrics").read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


RULES = [
    ('threshold', 'level:error', ["namespace"], 'count > 1000000000'),
    ('threshold', '"connection reset" OR timeout', ["namespace", "pod"], 'count > 1000000000'),
    ('threshold', 'namespace:payments AND level:warn', [], 'count > 1000000000'),
    ('threshold', 'level:error OR level:fatal', ["pod"], 'count > 1000'),
    ('match', 'level:fatal', ["pod"], None),
    ('match', 'OutOfMemory OR panic', ["namespace"], None),
]


def rule_file(n, interval):
    out = [f'[[groups]]\nname = "bench"\ninterval = "{interval}s"\n']
    for i in range(n):
        kind, query, group_by, condition = RULES[i % len(RULES)]
        # A clause of its own makes every rule's query distinct (no shared cache entries).
        q = f'({query}) -pod:"none-{i}"'
        out.append(f'[[groups.rules]]\nname = "r{i}"\nkind = "{kind}"\nquery = {json.dumps(q)}\n'
                   f'group_by = {json.dumps(group_by)}\n')
        if kind == "threshold":
            out.append(f'window = "5m"\ncondition = "{condition}"\n')
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trawl")
    ap.add_argument("corpus")
    ap.add_argument("--docs", type=int, default=10_000_000)
    ap.add_argument("--preload-secs", type=int, default=300)
    ap.add_argument("--spread-secs", type=int, default=600)
    ap.add_argument("--rate-mb", type=float, default=5.0)
    ap.add_argument("--counts", default="0,10,50,100")
    ap.add_argument("--interval-secs", type=int, default=20)
    ap.add_argument("--measure-secs", type=int, default=60)
    ap.add_argument("--data-dir", help="reuse this data directory (kept afterwards): with "
                    "--docs 0, a stream loaded by an earlier run is measured again")
    ap.add_argument("--settle-secs", type=int, default=0,
                    help="steady ingest before the first measure, so that the rules' 5-minute "
                         "windows are full of documents stamped now (300 for that)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="trawl-alert-bench-")
    rules = os.path.join(work, "rules.toml")
    open(rules, "w").write(rule_file(0, args.interval_secs))
    config = os.path.join(work, "trawl.toml")
    open(config, "w").write(
        f'[alerting]\nrule_files = ["{rules}"]\nreload_check_ms = 500\n'
        '[collector]\nenabled = false\n')
    out = open(os.path.join(work, "out"), "w+")
    proc = subprocess.Popen([args.trawl, "standalone", "--config", config, "--listen",
                             "127.0.0.1:0", "--data-dir", args.data_dir or os.path.join(work, "data")],
                            stdout=out, stderr=open(os.path.join(work, "log"), "w"))
    url = None
    for _ in range(600):
        out.seek(0)
        text = out.read()
        if "listening on " in text:
            url = text.split("listening on ", 1)[1].split()[0]
            break
        time.sleep(0.1)
    assert url, "trawl did not start"
    print(f"bench alerting server {url} pid {proc.pid} load {os.getloadavg()[0]:.2f}", flush=True)

    lines = open(args.corpus, "rb")

    def batch(limit_bytes, stamp_of):
        chunk, size, n = [], 0, 0
        for line in lines:
            s = line.decode()
            s = s[:TS_START] + stamp_of(n) + s[TS_END:]
            chunk.append(s)
            size += len(s)
            n += 1
            if size >= limit_bytes:
                break
        return "".join(chunk).encode(), n

    # 1. Preload.
    started = time.time()
    now_ns = time.time_ns()
    docs, raw = 0, 0
    spread_ns = args.spread_secs * 1_000_000_000
    while docs < args.docs and time.time() - started < args.preload_secs:
        base = docs
        body, n = batch(4 << 20, lambda i: stamp(
            now_ns - spread_ns + (base + i) * spread_ns // args.docs))
        if n == 0:
            break
        docs += post(url, body)
        raw += len(body)
    took = time.time() - started
    print(f"bench alerting preload_docs {docs} docs")
    print(f"bench alerting preload_mb {raw / 1e6:.0f} MB in {took:.0f} s "
          f"({raw / 1e6 / max(took, 1e-9):.1f} MB/s)", flush=True)

    # 2. Steady ingest, stamped now.
    stop = threading.Event()
    sent = [0, 0]

    def steady():
        per_tick = int(args.rate_mb * 1e6 / 5)
        nxt = time.time()
        while not stop.is_set():
            body, n = batch(per_tick, lambda i: stamp(time.time_ns()))
            if n == 0:
                lines.seek(0)
                continue
            sent[0] += post(url, body)
            sent[1] += len(body)
            nxt += 0.2
            time.sleep(max(0.0, nxt - time.time()))

    t = threading.Thread(target=steady, daemon=True)
    t.start()
    if args.settle_secs:
        time.sleep(args.settle_secs)
        print(f"bench alerting settled {args.settle_secs} s, steady ingest "
              f"{sent[1] / 1e6 / args.settle_secs:.1f} MB/s", flush=True)

    # 3. Rule counts.
    results = {}
    for n in [int(c) for c in args.counts.split(",")]:
        open(rules, "w").write(rule_file(n, args.interval_secs))
        deadline = time.time() + 60
        while time.time() < deadline:
            body = json.loads(urllib.request.urlopen(url + "/api/v1/rules").read())
            listed = sum(len(g["rules"]) for g in body["groups"])
            if listed == n:
                break
            time.sleep(0.2)
        time.sleep(args.interval_secs + 2)  # one round with the new rules
        cpu0, eval0 = cpu_secs(proc.pid), metric_sum(
            url, "trawl_alerting_rule_evaluation_duration_seconds_sum")
        sent0, t0 = sent[1], time.time()
        time.sleep(args.measure_secs)
        cpu1, eval1 = cpu_secs(proc.pid), metric_sum(
            url, "trawl_alerting_rule_evaluation_duration_seconds_sum")
        secs = time.time() - t0
        rounds = secs / args.interval_secs
        results.setdefault(n, []).append((cpu1 - cpu0) / secs * 60)
        print(f"bench alerting rules {n} cpu_per_min {results[n][-1]:.1f} s "
              f"eval_wall_per_round {(eval1 - eval0) / rounds:.2f} s "
              f"ingest {(sent[1] - sent0) / 1e6 / secs:.1f} MB/s "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
    # A count given more than once (`--counts 0,100,0,100`) is averaged: the ingest's own CPU
    # swings with its merges, and alternating the counts spreads those swings over both.
    mean = {n: sum(v) / len(v) for n, v in results.items()}
    base = mean.get(0)
    if base is not None:
        per_round = args.interval_secs / 60
        for n, cpu in sorted(mean.items()):
            if n:
                print(f"bench alerting rules {n} cpu_per_round_over_ingest "
                      f"{(cpu - base) * per_round:.2f} s (means of {len(results[n])} and "
                      f"{len(results[0])} measures)")
    body = json.loads(urllib.request.urlopen(url + "/api/v1/streams").read())
    for s in body["streams"]:
        if s["name"] == "logs":
            print(f"bench alerting logs_docs_at_end {s['docs']} bytes {s['bytes']}")
    errors = json.loads(urllib.request.urlopen(url + "/api/v1/rules").read())
    bad = [r["error"] for g in errors["groups"] for r in g["rules"] if r["error"]]
    print(f"bench alerting rule_errors {len(bad)} {bad[:1]}")
    stop.set()
    proc.terminate()
    proc.wait(timeout=60)


if __name__ == "__main__":
    main()
