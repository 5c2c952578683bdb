#!/usr/bin/env python3
"""Reads the Arrow IPC stream and Parquet exports of a running trawl server with pyarrow.

Usage: interop_export.py URL   (e.g. http://127.0.0.1:7400)

Ingests its own records into the `logs` stream (a marker word no other data has), waits
until they are searchable, then exports them as Arrow and Parquet and asserts, with pyarrow's
readers: the exact row count, the column types (timestamp[ns, tz=UTC], strings, uint64), and
a few values. Exits non-zero with a message on the first failure. Needs only pyarrow.
"""

import io
import json
import sys
import time
import urllib.parse
import urllib.request

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

ROWS = 2500
BASE_NANOS = 1_795_600_800_000_000_000  # 2026-11-25T10:00:00Z
STEP_NANOS = 1_000_000_007
LEVELS = ["info", "warn", "error"]


def marker() -> str:
    # One token for the default tokenizer, new on every run so that reruns do not mix.
    return "interop%d" % time.time_ns()


def record(i: int, mark: str) -> dict:
    nanos = BASE_NANOS + i * STEP_NANOS
    secs, frac = divmod(nanos, 1_000_000_000)
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%09dZ" % frac
    return {
        "timestamp": ts,
        "namespace": "interop",
        "pod": "pod-%d" % (i % 7),
        "level": LEVELS[i % 3],
        "message": "record %d %s, \"quoted\"" % (i, mark),
        "labels": {"app": "interop"},
        "offset": i,
    }


def request(url: str, data: bytes = None, headers: dict = None) -> bytes:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return resp.read()


def fail(message: str) -> None:
    print("interop_export: FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def check(cond: bool, message: str) -> None:
    if not cond:
        fail(message)


def main() -> None:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    base = sys.argv[1].rstrip("/")
    mark = marker()
    body = "".join(json.dumps(record(i, mark)) + "\n" for i in range(ROWS)).encode()
    answer = json.loads(
        request(base + "/api/v1/logs/ingest", body, {"content-type": "application/x-ndjson"})
    )
    check(answer.get("accepted") == ROWS, "ingest answered %r" % answer)

    query = "message:%s" % mark
    deadline = time.time() + 30
    while True:
        params = urllib.parse.urlencode({"q": query, "limit": 0})
        total = json.loads(request(base + "/api/v1/logs/search?" + params))["total"]
        if total == ROWS:
            break
        check(time.time() < deadline, "only %d of %d records searchable after 30 s" % (total, ROWS))
        time.sleep(0.2)

    def export(fmt: str) -> bytes:
        params = urllib.parse.urlencode(
            {"q": query, "format": fmt, "sort": "asc",
             "fields": "timestamp,pod,level,message,labels,offset"}
        )
        return request(base + "/api/v1/logs/export?" + params)

    arrow_table = ipc.open_stream(io.BytesIO(export("arrow"))).read_all()
    parquet_table = pq.read_table(io.BytesIO(export("parquet")))
    for name, table in [("arrow", arrow_table), ("parquet", parquet_table)]:
        check(table.num_rows == ROWS, "%s: %d rows, expected %d" % (name, table.num_rows, ROWS))
        schema = table.schema
        check(schema.field("timestamp").type == pa.timestamp("ns", tz="UTC"),
              "%s: timestamp is %s" % (name, schema.field("timestamp").type))
        check(schema.field("pod").type == pa.string(), "%s: pod is %s" % (name, schema.field("pod").type))
        check(schema.field("offset").type == pa.uint64(), "%s: offset is %s" % (name, schema.field("offset").type))
        check(schema.names == ["timestamp", "pod", "level", "message", "labels", "offset"],
              "%s: columns %s" % (name, schema.names))
        # Timestamps are compared as integers: Python datetimes have no nanoseconds.
        rows = {n: table.column(n).to_pylist() for n in schema.names if n != "timestamp"}
        check(rows["offset"] == list(range(ROWS)), "%s: offsets out of order or missing" % name)
        first_ns = table.column("timestamp").cast(pa.int64()).to_pylist()
        check(first_ns[0] == BASE_NANOS and first_ns[-1] == BASE_NANOS + (ROWS - 1) * STEP_NANOS,
              "%s: timestamps %d..%d" % (name, first_ns[0], first_ns[-1]))
        check(rows["message"][7] == "record 7 %s, \"quoted\"" % mark, "%s: message %r" % (name, rows["message"][7]))
        check(rows["level"][:3] == ["info", "warn", "error"], "%s: levels %r" % (name, rows["level"][:3]))
        check(json.loads(rows["labels"][0]) == {"app": "interop"}, "%s: labels %r" % (name, rows["labels"][0]))
        check(rows["pod"][13] == "pod-6", "%s: pod %r" % (name, rows["pod"][13]))
    meta = pq.ParquetFile(io.BytesIO(export("parquet"))).metadata
    check(meta.row_group(0).column(0).compression == "ZSTD",
          "parquet: compression %s" % meta.row_group(0).column(0).compression)
    print("interop_export: ok: %d rows read back from arrow and parquet" % ROWS)


if __name__ == "__main__":
    main()
