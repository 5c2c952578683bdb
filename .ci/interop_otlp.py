#!/usr/bin/env python3
"""Interop: the OpenTelemetry Python SDK and a Loki push against a running trawl.

Usage: interop_otlp.py BASE_URL   (or TRAWL_URL in the environment), e.g.
       interop_otlp.py http://127.0.0.1:7400

Needs: opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http, cramjam (all wheels, no
compiler).

1. `opentelemetry-sdk` with `OTLPLogExporter` (OTLP/HTTP, protobuf) emits log records through
   the standard `logging` bridge, from a resource carrying the Kubernetes attributes
   (`k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`, `k8s.container.name`,
   `k8s.node.name`, `service.name`); one record inside a span, so that it carries trace and
   span ids. The script then polls the `logs` stream until the records are found and asserts
   their fields exactly.
2. A Loki push in JSON, and one in protobuf (`logproto.PushRequest`, encoded by hand here)
   compressed with snappy's block format, as Promtail sends it; both are found with their
   labels mapped.

Every record carries a marker unique to this run (in its pod name), so the script can run
against a server that holds other data. Exits non-zero on the first mismatch.
"""

import json
import logging
import os
import sys
import time
import urllib.parse
import urllib.request
import uuid

import cramjam
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

DEADLINE_SECS = 30


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def expect(actual, expected, what):
    if actual != expected:
        fail(f"{what}: expected {expected!r}, got {actual!r}")


def search(base, q):
    query = urllib.parse.urlencode({"q": q, "sort": "asc", "limit": "100"})
    with urllib.request.urlopen(f"{base}/api/v1/logs/search?{query}", timeout=10) as resp:
        return json.load(resp)


def wait_for(base, q, count):
    deadline = time.monotonic() + DEADLINE_SECS
    last = None
    while time.monotonic() < deadline:
        last = search(base, q)
        if last["total"] == count:
            return last["hits"]
        time.sleep(0.1)
    fail(f"`{q}` never totalled {count}; last answer {last}")


def post(base, path, body, content_type):
    req = urllib.request.Request(
        f"{base}{path}", data=body, method="POST", headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def otlp_sdk(base, marker):
    pod = f"otel-{marker}"
    resource = Resource.create(
        {
            "service.name": "checkout",
            "k8s.namespace.name": "interop",
            "k8s.pod.name": pod,
            "k8s.pod.uid": f"uid-{marker}",
            "k8s.container.name": "app",
            "k8s.node.name": "node-7",
        }
    )
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{base}/v1/logs", timeout=10))
    )
    logger = logging.getLogger(f"interop.{marker}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))

    tracer = TracerProvider().get_tracer("interop")
    logger.warning("cache miss for %s", "user-1")
    with tracer.start_as_current_span("checkout") as span:
        ctx = span.get_span_context()
        trace_id, span_id = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
        logger.error("payment failed", extra={"order.id": 42})
    provider.force_flush()
    provider.shutdown()

    hits = wait_for(base, f"pod:{pod}", 2)
    for hit in hits:
        fields = {k: hit.get(k) for k in ("namespace", "pod", "pod_uid", "container", "node")}
        expect(
            fields,
            {
                "namespace": "interop",
                "pod": pod,
                "pod_uid": f"uid-{marker}",
                "container": "app",
                "node": "node-7",
            },
            "kubernetes fields of an OTLP record",
        )
        expect(hit["attributes"].get("service.name"), "checkout", "service.name attribute")
    expect([h["message"] for h in hits], ["cache miss for user-1", "payment failed"], "messages")
    expect([h["level"] for h in hits], ["warn", "error"], "levels")
    expect(hits[1]["attributes"].get("order.id"), 42, "a log attribute")
    expect(hits[1]["attributes"].get("trace_id"), trace_id, "trace id")
    expect(hits[1]["attributes"].get("span_id"), span_id, "span id")
    expect("trace_id" in hits[0]["attributes"], False, "no trace id outside a span")
    print(f"otlp: 2 records from opentelemetry-sdk found with their Kubernetes fields ({pod})")


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, wire_type, payload):
    key = varint((number << 3) | wire_type)
    if wire_type == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload


def push_request(labels, entries):
    """logproto.PushRequest{streams: [StreamAdapter{labels, entries: [EntryAdapter]}]}."""
    stream = field(1, 2, labels.encode())
    for nanos, line in entries:
        seconds, rest = divmod(nanos, 1_000_000_000)
        timestamp = field(1, 0, seconds) + (field(2, 0, rest) if rest else b"")
        stream += field(2, 2, field(1, 2, timestamp) + field(2, 2, line.encode()))
    return field(1, 2, stream)


def loki(base, marker):
    now = time.time_ns()
    json_pod, proto_pod = f"lokijson-{marker}", f"lokiproto-{marker}"
    body = {
        "streams": [
            {
                "stream": {
                    "namespace": "interop",
                    "pod": json_pod,
                    "container": "app",
                    "job": "interop/app",
                },
                "values": [[str(now), "ERROR first line"], [str(now + 1), "second line"]],
            }
        ]
    }
    expect(
        post(base, "/loki/api/v1/push", json.dumps(body).encode(), "application/json"),
        204,
        "status of a JSON push",
    )
    labels = f'{{k8s_namespace_name="interop", pod="{proto_pod}", node_name="node-7", app="say \\"hi\\""}}'
    raw = push_request(labels, [(now + 2, "level=warn msg=third")])
    compressed = bytes(cramjam.snappy.compress_raw(raw))
    expect(
        post(base, "/loki/api/v1/push", compressed, "application/x-protobuf"),
        204,
        "status of a snappy protobuf push",
    )
    hits = wait_for(base, f"pod:{json_pod}", 2)
    expect([h["message"] for h in hits], ["ERROR first line", "second line"], "JSON push lines")
    expect([h.get("level") for h in hits], ["error", None], "JSON push levels")
    expect(hits[0]["labels"], {"job": "interop/app"}, "JSON push labels")
    expect(hits[0]["container"], "app", "JSON push container")
    hits = wait_for(base, f"pod:{proto_pod}", 1)
    hit = hits[0]
    expect(
        {k: hit.get(k) for k in ("namespace", "node", "level", "message", "labels")},
        {
            "namespace": "interop",
            "node": "node-7",
            "level": "warn",
            "message": "level=warn msg=third",
            "labels": {"app": 'say "hi"'},
        },
        "protobuf push record",
    )
    print(f"loki: JSON and snappy-protobuf pushes found ({json_pod}, {proto_pod})")


def main():
    base = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TRAWL_URL", "")).rstrip("/")
    if not base:
        fail("usage: interop_otlp.py BASE_URL (or TRAWL_URL)")
    marker = uuid.uuid4().hex[:12]
    otlp_sdk(base, marker)
    loki(base, marker)
    print("interop_otlp: 2 passed, 0 failed")


if __name__ == "__main__":
    main()
