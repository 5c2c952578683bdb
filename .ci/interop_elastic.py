#!/usr/bin/env python3
"""Interop: the official `elasticsearch` Python client (8.x or 9.x) against a running trawl.

Usage: interop_elastic.py BASE_URL [SEARCH_URL]   (or TRAWL_URL in the environment), e.g.
       interop_elastic.py http://127.0.0.1:7400

With SEARCH_URL (a `trawl searcher` over the server at BASE_URL), documents are bulk-indexed
at BASE_URL and every other call goes to SEARCH_URL: the same answers through a searcher.

Bulk-indexes Fluent Bit- and Filebeat-shaped documents into `logs` through
`/api/v1/_elastic/_bulk` with `helpers.bulk`, waits until they are searchable, then checks
exact answers of: cluster info, `query_string`, `bool` with a `range` on `@timestamp`,
`terms` + `date_histogram` aggregations (as Grafana sends them), `count`, `msearch`, the
index mapping and field capabilities, and the error of an unsupported construct. Then
documents in Trawl's own field names (`namespace`, `pod`, `level`, `message`, `timestamp`)
are bulk-indexed and must land on those fields: `namespace:hdfs` finds them, as do the
shippers' names of the same fields (`kubernetes.namespace_name`, `container.image.name`). Every
document carries a marker word unique to this run, and every query filters on it, so the
script can run against a server that holds other data. Exits non-zero on the first mismatch.
"""

import os
import sys
import time
import uuid

import elasticsearch
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError, helpers

N = 120
NAMESPACES = ["payments", "checkout", "search"]
# 2026-11-25T10:00:00Z in milliseconds; documents are half a second apart.
BASE_MS = 1_795_600_800_000
STEP_MS = 500


def iso(ms):
    secs, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{milli:03d}Z"


def namespace(i):
    return NAMESPACES[i % 3]


def pod(i):
    return f"{namespace(i)}-{i % 2}"


def has_timeout(i):
    return i % 4 == 0


def has_reset(i):
    return i % 5 == 0


def message(i, marker):
    text = f"request {i} handled {marker}"
    if has_timeout(i):
        text += " upstream timeout"
    if has_reset(i):
        text += " connection reset by peer"
    return text


def document(i, marker):
    """Even documents as Fluent Bit's es output sends them, odd ones as Filebeat's."""
    ns = namespace(i)
    if i % 2 == 0:
        return {
            "@timestamp": iso(BASE_MS + i * STEP_MS),
            "log": message(i, marker),
            "stream": "stdout",
            "kubernetes": {
                "namespace_name": ns,
                "pod_name": pod(i),
                "container_name": "app",
                "host": "node-1",
                "labels": {"app": ns},
            },
        }
    return {
        "@timestamp": iso(BASE_MS + i * STEP_MS),
        "message": message(i, marker),
        "stream": "stdout",
        "kubernetes": {
            "namespace": ns,
            "pod": {"name": pod(i)},
            "container": {"name": "app"},
            "node": {"name": "node-1"},
            "labels": {"app": ns},
        },
    }


def check(name, got, expected):
    if got != expected:
        print(f"FAIL {name}:\n  expected {expected!r}\n  got      {got!r}", file=sys.stderr)
        sys.exit(1)
    print(f"ok   {name}")


def pods_of(response):
    return sorted(h["_source"]["pod"] for h in response["hits"]["hits"])


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TRAWL_URL", "")
    if not base:
        sys.exit("usage: interop_elastic.py BASE_URL (or TRAWL_URL)")
    es = Elasticsearch(base.rstrip("/") + "/api/v1/_elastic", request_timeout=60)
    writer = es
    if len(sys.argv) > 2:
        es = Elasticsearch(sys.argv[2].rstrip("/") + "/api/v1/_elastic", request_timeout=60)
        print(f"bulk to {base}, everything else to the searcher at {sys.argv[2]}")
    marker = "esrun" + uuid.uuid4().hex[:12]
    mine = {"query_string": {"query": marker}}

    print(f"elasticsearch-py {elasticsearch.__versionstr__}")
    info = es.info()
    check("cluster info version", info["version"]["number"].split(".")[0], "8")
    check("tagline", info["tagline"], "You Know, for Search")

    actions = [{"_index": "logs", "_source": document(i, marker)} for i in range(N)]
    indexed, errors = helpers.bulk(writer, actions, chunk_size=50, raise_on_error=False)
    check("helpers.bulk indexed", (indexed, errors), (N, []))

    deadline = time.monotonic() + 30
    while True:
        count = es.count(index="logs", query=mine)["count"]
        if count == N:
            break
        if time.monotonic() > deadline:
            check("bulk documents searchable within 30 s", count, N)
        time.sleep(0.1)
    check("count", count, N)

    # query_string: marker AND a word of the message.
    r = es.search(index="logs", query={"query_string": {"query": f"{marker} AND timeout"}}, size=100)
    expected = [i for i in range(N) if has_timeout(i)]
    check("query_string total", r["hits"]["total"], {"value": len(expected), "relation": "eq"})
    check("query_string hits", pods_of(r), sorted(pod(i) for i in expected))
    check("hits are in the logs index", {h["_index"] for h in r["hits"]["hits"]}, {"logs"})

    # bool: a range on @timestamp (Grafana's epoch_millis form), a term on a shipper field
    # name, a phrase, and a must_not; sorted oldest first.
    lo, hi = 20, 90  # [lo, hi) by document number
    r = es.search(
        index="logs",
        size=100,
        query={
            "bool": {
                "filter": [
                    mine,
                    {"range": {"@timestamp": {"gte": BASE_MS + lo * STEP_MS,
                                              "lte": BASE_MS + hi * STEP_MS - 1,
                                              "format": "epoch_millis"}}},
                    {"term": {"kubernetes.namespace_name.keyword": "payments"}},
                ],
                "must_not": [{"match_phrase": {"message": "connection reset"}}],
            }
        },
        sort=[{"@timestamp": {"order": "asc"}}],
        source=["pod", "offset", "timestamp", "message"],
    )
    expected = [i for i in range(lo, hi) if namespace(i) == "payments" and not has_reset(i)]
    check("bool+range total", r["hits"]["total"]["value"], len(expected))
    check("bool+range order", [h["_source"]["message"].split()[1] for h in r["hits"]["hits"]],
          [str(i) for i in expected])

    # Same range as ISO dates with date math: `lt` of a whole second.
    r = es.search(index="logs", size=0, query={"bool": {"filter": [mine, {"range": {"@timestamp": {
        "gte": iso(BASE_MS + lo * STEP_MS), "lt": iso(BASE_MS) + "||+45s"}}}]}})
    check("range with date math", r["hits"]["total"]["value"], 90 - lo)

    # Aggregations as Grafana sends them: terms on a .keyword field with a date_histogram
    # inside, and a date_histogram with the legacy interval, min_doc_count 0 and bounds.
    r = es.search(
        index="logs",
        size=0,
        query={"bool": {"filter": [mine, {"range": {"@timestamp": {
            "gte": BASE_MS, "lte": BASE_MS + 70_000, "format": "epoch_millis"}}}]}},
        aggs={
            "ns": {
                "terms": {"field": "kubernetes.namespace_name.keyword", "size": 10,
                          "order": {"_key": "asc"}, "min_doc_count": 1},
                "aggs": {"t": {"date_histogram": {"field": "@timestamp", "fixed_interval": "20s",
                                                   "min_doc_count": 0, "format": "epoch_millis"}}},
            },
            "per10s": {"date_histogram": {"field": "@timestamp", "interval": "10s",
                                          "min_doc_count": "0", "format": "epoch_millis",
                                          "extended_bounds": {"min": BASE_MS, "max": BASE_MS + 70_000}}},
        },
    )
    aggs = r["aggregations"]
    ns_buckets = [(b["key"], b["doc_count"]) for b in aggs["ns"]["buckets"]]
    check("terms buckets", ns_buckets,
          sorted((ns, sum(1 for i in range(N) if namespace(i) == ns)) for ns in NAMESPACES))
    payments = next(b for b in aggs["ns"]["buckets"] if b["key"] == "payments")
    per20 = {}
    for i in range(N):
        if namespace(i) == "payments":
            key = BASE_MS + (i * STEP_MS) // 20_000 * 20_000
            per20[key] = per20.get(key, 0) + 1
    check("nested date_histogram", [(b["key"], b["doc_count"]) for b in payments["t"]["buckets"]],
          sorted(per20.items()))
    per10 = [(b["key"], b["key_as_string"], b["doc_count"]) for b in aggs["per10s"]["buckets"]]
    expected = []
    for k in range(8):
        key = BASE_MS + k * 10_000
        expected.append((key, str(key), sum(1 for i in range(N) if k * 10_000 <= i * STEP_MS < (k + 1) * 10_000)))
    check("date_histogram with extended_bounds", per10, expected)

    # count with a query, and a URI search.
    check("count with match",
          es.count(index="logs", query={"bool": {"filter": [mine, {"match": {"log": "reset"}}]}})["count"],
          sum(1 for i in range(N) if has_reset(i)))

    # msearch: what Grafana's data source sends; one item fails on its own.
    r = es.msearch(searches=[
        {"index": "logs"},
        {"size": 0, "query": {"bool": {"filter": [mine, {"terms": {"kubernetes.pod_name": ["search-0", "search-1"]}}]}}},
        {"index": "no-such-index"},
        {"query": {"match_all": {}}},
        {"index": "logs"},
        {"size": 2, "query": mine, "sort": [{"@timestamp": "desc"}], "_source": ["pod"]},
    ])
    responses = r["responses"]
    check("msearch item count", len(responses), 3)
    check("msearch terms total", responses[0]["hits"]["total"]["value"],
          sum(1 for i in range(N) if namespace(i) == "search"))
    check("msearch missing index", (responses[1]["status"], responses[1]["error"]["type"]),
          (404, "index_not_found_exception"))
    check("msearch newest first", [h["_source"]["pod"] for h in responses[2]["hits"]["hits"]],
          [pod(N - 1), pod(N - 2)])

    # search_after paging over the marker's documents, 25 at a time, oldest first.
    seen, after = [], None
    while True:
        kwargs = {"search_after": after} if after else {}
        page = es.search(index="logs", size=25, query=mine, sort=[{"@timestamp": "asc"}, {"_doc": "asc"}],
                         source=["message"], **kwargs)
        hits = page["hits"]["hits"]
        if not hits:
            break
        seen.extend(int(h["_source"]["message"].split()[1]) for h in hits)
        after = hits[-1]["sort"]
    check("search_after pages", seen, list(range(N)))

    mapping = es.indices.get_mapping(index="logs")
    props = mapping["logs"]["mappings"]["properties"]
    check("mapping types", (props["@timestamp"]["type"], props["namespace"]["type"], props["message"]["type"]),
          ("date_nanos", "keyword", "text"))
    caps = es.field_caps(index="logs", fields="namespace,@timestamp")
    check("field_caps", sorted(caps["fields"]), ["@timestamp", "namespace"])
    check("indices.exists", bool(es.indices.exists(index="logs")), True)

    try:
        es.search(index="logs", query={"fuzzy": {"message": "timeuot"}})
        check("unsupported construct refused", "accepted", "400")
    except BadRequestError as err:
        check("unsupported construct error",
              (err.meta.status, err.body["error"]["type"], err.body["error"]["reason"]),
              (400, "parsing_exception", "[fuzzy] query is not supported by trawl"))
    try:
        es.search(index="no-such-index", query=mine)
        check("unknown index refused", "accepted", "404")
    except NotFoundError as err:
        check("unknown index error", err.body["error"]["type"], "index_not_found_exception")

    trawl_shaped(es, writer, marker + "own")
    print("elasticsearch client interop: all checks passed")


def trawl_shaped(es, writer, marker):
    """Documents in Trawl's own field names land on those fields (regression: they landed
    under `attributes.*`, and `namespace:hdfs` found none of them)."""
    n = 12
    actions = []
    for i in range(n):
        actions.append({"_index": "logs", "_source": {
            "timestamp": iso(BASE_MS + i * STEP_MS)[:-1] + "000001Z",
            "namespace": "hdfs" if i % 3 == 0 else "yarn",
            "pod": f"datanode-{i % 2}",
            "container": "dn",
            "image": "apache/hadoop:3.4.1",
            "level": "warn" if i % 4 == 0 else "info",
            "message": f"block report {i} {marker}",
            "labels": {"app": "hdfs"},
        }})
    indexed, errors = helpers.bulk(writer, actions, raise_on_error=False, refresh="wait_for")
    check("Trawl-shaped bulk indexed", (indexed, errors), (n, []))
    hdfs = [i for i in range(n) if i % 3 == 0]
    for q, expected in [
        (f"{marker} AND namespace:hdfs", hdfs),
        (f"{marker} AND kubernetes.namespace_name:hdfs", hdfs),
        (f"{marker} AND namespace:hdfs AND level:warn", [i for i in hdfs if i % 4 == 0]),
        (f"{marker} AND container.image.name:\"apache/hadoop:3.4.1\"", list(range(n))),
    ]:
        r = es.search(index="logs", query={"query_string": {"query": q}}, size=100,
                      sort=[{"@timestamp": "asc"}])
        check(f"Trawl-shaped `{q}`",
              [int(h["_source"]["message"].split()[2]) for h in r["hits"]["hits"]], expected)
    r = es.search(index="logs", size=1, query={"bool": {"filter": [
        {"query_string": {"query": marker}}, {"term": {"namespace": "hdfs"}}]}},
        sort=[{"@timestamp": "asc"}])
    source = r["hits"]["hits"][0]["_source"]
    check("Trawl-shaped fields", (source["namespace"], source["pod"], source["level"],
                                  source.get("attributes")),
          ("hdfs", "datanode-0", "warn", None))


if __name__ == "__main__":
    main()
