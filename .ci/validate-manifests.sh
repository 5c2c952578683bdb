#!/usr/bin/env bash
# Render the Kubernetes overlays in deploy/kubernetes and check what they render:
#
#   1. render overlays/cluster, overlays/standalone and overlays/remote-collector with Debian's kubectl (package
#      kubernetes-client: kubectl 1.20, whose embedded kustomize is v2, the oldest we support);
#      where another, current kubectl is also installed, render with it too and require the
#      same objects (what CI renders must be what `kubectl apply -k` applies);
#   2. validate every rendered object against the official Kubernetes JSON schemas of each
#      version in $KUBE_VERSIONS, strictly (unknown fields are errors; so is a kind with no
#      schema), and check references inside each overlay (ConfigMaps, ServiceAccounts, Service
#      selectors, StatefulSet serviceName, the webhook hostPort);
#   3. check the audit policy and the webhook kubeconfig (not rendered objects: their shape);
#   4. run `$TRAWL_BIN config check` on the trawl.toml of each overlay's ConfigMap, with the
#      TRAWL_* environment overrides of each workload that reads it.
#
# Environment:
#   VENV           Python venv with kubernetes-validate and pyyaml; created when missing
#                  (default /var/tmp/trawl-ci-venv).
#   TRAWL_BIN      the built `trawl` binary; without it step 4 is skipped (and says so).
#   KUBE_VERSIONS  Kubernetes versions to validate against (default "1.25 1.34").
#   KUBECTL_CACHE  where Debian's kubectl is unpacked when another kubectl owns
#                  /usr/bin/kubectl (default /var/tmp/trawl-ci-kubernetes-client).
#
# Last line on success: `manifests: N objects valid`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K8S="$ROOT/deploy/kubernetes"
OVERLAYS=(cluster standalone remote-collector)
VENV=${VENV:-/var/tmp/trawl-ci-venv}
KUBE_VERSIONS=${KUBE_VERSIONS:-"1.25 1.34"}
KUBECTL_CACHE=${KUBECTL_CACHE:-/var/tmp/trawl-ci-kubernetes-client}
# Pinned: the bundled schemas (and so the verdicts) change with its releases.
KUBERNETES_VALIDATE_VERSION=1.37.0
export DEBIAN_FRONTEND=noninteractive

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { printf 'validate-manifests: %s\n' "$*"; }

# --- kubectl -----------------------------------------------------------------------------------

# True when $1 (a path, symlinks followed) belongs to Debian's kubernetes-client package.
is_debian_kubectl() {
    local real
    real=$(readlink -f "$1")
    dpkg-query -S "$real" 2>/dev/null | grep -q '^kubernetes-client:'
}

if ! command -v kubectl >/dev/null 2>&1; then
    say "kubectl missing: installing Debian's kubernetes-client"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
fi

path_kubectl=$(command -v kubectl)
current_kubectl=""
if is_debian_kubectl "$path_kubectl"; then
    old_kubectl=$path_kubectl
else
    # Another kubectl (e.g. the Google Cloud SDK's) owns /usr/bin/kubectl, and installing
    # kubernetes-client would clash with it: unpack Debian's package beside it instead, and use
    # the other one as the current kubectl to compare against.
    current_kubectl=$path_kubectl
    old_kubectl="$KUBECTL_CACHE/usr/bin/kubectl"
    if [ ! -x "$old_kubectl" ]; then
        say "unpacking Debian's kubernetes-client into $KUBECTL_CACHE"
        apt-get update -qq
        # Downloaded as root into a private directory, which apt's sandbox user cannot enter.
        (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root kubernetes-client)
        mkdir -p "$KUBECTL_CACHE"
        dpkg-deb -x "$work"/kubernetes-client_*.deb "$KUBECTL_CACHE"
        rm -f "$work"/kubernetes-client_*.deb
    fi
fi
old_version=$("$old_kubectl" version --client --short 2>/dev/null || "$old_kubectl" version --client)
say "rendering with $old_kubectl ($old_version, Debian kubernetes-client)"
if [ -n "$current_kubectl" ]; then
    say "comparing with $current_kubectl ($("$current_kubectl" version --client 2>/dev/null | head -n 1))"
else
    say "no other kubectl installed: not comparing with a current kustomize"
fi

# --- Python venv -------------------------------------------------------------------------------

if [ ! -x "$VENV/bin/python" ]; then
    say "creating venv $VENV"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" - "$KUBERNETES_VALIDATE_VERSION" <<'EOF' 2>/dev/null; then
import sys, yaml
from importlib.metadata import version
sys.exit(0 if version("kubernetes-validate") == sys.argv[1] else 1)
EOF
    say "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION and pyyaml into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" pyyaml
fi

# --- render ------------------------------------------------------------------------------------

for overlay in "${OVERLAYS[@]}"; do
    "$old_kubectl" kustomize "$K8S/overlays/$overlay" >"$work/$overlay.yaml"
    say "rendered overlays/$overlay ($(grep -c '^kind:' "$work/$overlay.yaml") objects)"
    if [ -n "$current_kubectl" ]; then
        # Current kustomize warns that `bases:` is deprecated; the warning is expected.
        "$current_kubectl" kustomize "$K8S/overlays/$overlay" >"$work/$overlay.current.yaml" \
            2>"$work/$overlay.current.err" || { cat "$work/$overlay.current.err" >&2; exit 1; }
    fi
done

# --- validate ----------------------------------------------------------------------------------

cat >"$work/check.py" <<'EOF'
"""Checks of the rendered overlays, the audit files and the ConfigMap's trawl.toml."""
import json
import os
import sys
import tomllib
from urllib.parse import urlsplit

import yaml
import kubernetes_validate.utils as kv

work, k8s = sys.argv[1], sys.argv[2]
overlays = sys.argv[3].split()
versions = sys.argv[4].split()
failures = []


def fail(msg):
    failures.append(msg)
    print(f"  FAIL {msg}")


def key(obj):
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def pod_spec(obj):
    if obj["kind"] in ("DaemonSet", "Deployment", "StatefulSet", "ReplicaSet", "Job"):
        return obj["spec"]["template"]["spec"], obj["spec"]["template"]["metadata"].get("labels", {})
    if obj["kind"] == "Pod":
        return obj["spec"], obj["metadata"].get("labels", {})
    return None, None


total = 0
hostports = {}
for overlay in overlays:
    objs = load_all(os.path.join(work, f"{overlay}.yaml"))
    print(f"overlays/{overlay}: {len(objs)} objects, Kubernetes {', '.join(versions)}, strict")

    # Schema validation, every object, every version.
    seen = set()
    for obj in objs:
        k = key(obj)
        if k in seen:
            fail(f"{overlay}: {k} rendered twice")
        seen.add(k)
        before = len(failures)
        for v in versions:
            try:
                kv.validate(obj, v, strict=True)
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                fail(f"{overlay}: {k} (Kubernetes {v}): {path}: {e.message}")
            except kv.SchemaNotFoundError as e:
                fail(f"{overlay}: {k} (Kubernetes {v}): {e.message}")
        if len(failures) == before:
            print(f"  ok {k}")
    total += len(objs)

    # Same objects from the current kustomize, where one was available.
    current = os.path.join(work, f"{overlay}.current.yaml")
    if os.path.exists(current):
        canon = lambda docs: sorted(json.dumps(d, sort_keys=True) for d in docs)
        if canon(objs) != canon(load_all(current)):
            fail(f"{overlay}: current kustomize renders other objects than kustomize v2 "
                 f"(diff {overlay}.yaml {overlay}.current.yaml)")
        else:
            print("  ok current kustomize renders the same objects")

    # References inside the overlay.
    by_kind = {}
    for obj in objs:
        by_kind.setdefault(obj["kind"], {})[(obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
    workloads = []
    for obj in objs:
        spec, labels = pod_spec(obj)
        if spec is None:
            continue
        ns = obj["metadata"].get("namespace")
        workloads.append((obj, ns, labels))
        sa = spec.get("serviceAccountName")
        if sa and (ns, sa) not in by_kind.get("ServiceAccount", {}):
            fail(f"{overlay}: {key(obj)} uses ServiceAccount {sa}, not rendered")
        for vol in spec.get("volumes", []):
            cm = vol.get("configMap")
            if cm and (ns, cm["name"]) not in by_kind.get("ConfigMap", {}):
                fail(f"{overlay}: {key(obj)} mounts ConfigMap {cm['name']}, not rendered")
        for c in spec.get("containers", []):
            for p in c.get("ports", []):
                if "hostPort" in p:
                    hostports[(overlay, key(obj))] = p["hostPort"]
        if obj["kind"] == "StatefulSet":
            svc = by_kind.get("Service", {}).get((ns, obj["spec"]["serviceName"]))
            if svc is None:
                fail(f"{overlay}: {key(obj)} serviceName {obj['spec']['serviceName']}, not rendered")
            elif svc["spec"].get("clusterIP") != "None":
                fail(f"{overlay}: {key(obj)} serviceName {svc['metadata']['name']} is not headless")
    for (ns, name), svc in by_kind.get("Service", {}).items():
        sel = svc["spec"].get("selector", {})
        if not any(wns == ns and all(labels.get(a) == b for a, b in sel.items())
                   for _, wns, labels in workloads):
            fail(f"{overlay}: {key(svc)} selects no workload")

    # The ConfigMap's trawl.toml, and the TRAWL_* overrides of each workload that reads it.
    cms = [o for o in objs if o["kind"] == "ConfigMap" and "trawl.toml" in o.get("data", {})]
    if len(cms) != 1:
        fail(f"{overlay}: {len(cms)} ConfigMaps hold trawl.toml, expected 1")
        continue
    text = cms[0]["data"]["trawl.toml"]
    path = os.path.join(work, f"{overlay}.trawl.toml")
    with open(path, "w") as f:
        f.write(text)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        fail(f"{overlay}: trawl.toml is not TOML: {e}")
    runs = []
    for obj, _, _ in workloads:
        spec, _ = pod_spec(obj)
        if not any(v.get("configMap", {}).get("name") == cms[0]["metadata"]["name"]
                   for v in spec.get("volumes", [])):
            continue
        for c in spec["containers"]:
            env = {}
            for e in c.get("env", []):
                if e["name"].startswith("TRAWL_"):
                    # Downward-API values are known only in the pod: a stand-in of the same kind.
                    env[e["name"]] = e.get("value", "from-downward-api")
                    if any(ch.isspace() for ch in env[e["name"]]):
                        fail(f"{overlay}: {key(obj)} env {e['name']}: whitespace (this check passes env by words)")
            runs.append({"what": f"{key(obj)} {c['name']}", "file": path, "env": env})
    with open(os.path.join(work, f"{overlay}.runs.json"), "w") as f:
        json.dump(runs, f)

# The webhook kubeconfig must point at the collector's hostPort on the loopback address.
audit = os.path.join(k8s, "audit")
print("audit/: policy and webhook kubeconfig")
docs = load_all(os.path.join(audit, "policy.yaml"))
if len(docs) != 1 or docs[0].get("apiVersion") != "audit.k8s.io/v1" or docs[0].get("kind") != "Policy":
    fail("audit/policy.yaml: expected one audit.k8s.io/v1 Policy")
else:
    policy = docs[0]
    allowed_top = {"apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"}
    for extra in set(policy) - allowed_top:
        fail(f"audit/policy.yaml: unknown field {extra}")
    stages = {"RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"}
    for s in policy.get("omitStages", []):
        if s not in stages:
            fail(f"audit/policy.yaml: unknown stage {s}")
    rules = policy.get("rules") or []
    levels = {"None", "Metadata", "Request", "RequestResponse"}
    rule_fields = {"level", "users", "userGroups", "verbs", "resources", "namespaces",
                   "nonResourceURLs", "omitStages", "omitManagedFields"}
    for i, r in enumerate(rules):
        if r.get("level") not in levels:
            fail(f"audit/policy.yaml: rule {i}: level {r.get('level')!r}")
        for extra in set(r) - rule_fields:
            fail(f"audit/policy.yaml: rule {i}: unknown field {extra}")
        if "resources" in r and "nonResourceURLs" in r:
            fail(f"audit/policy.yaml: rule {i}: resources and nonResourceURLs together")
    if not rules or set(rules[-1]) != {"level"}:
        fail("audit/policy.yaml: the last rule must be a catch-all (level only)")
    else:
        print(f"  ok Policy: {len(rules)} rules, default level {rules[-1]['level']}")

docs = load_all(os.path.join(audit, "webhook-kubeconfig.yaml"))
if len(docs) != 1 or docs[0].get("apiVersion") != "v1" or docs[0].get("kind") != "Config":
    fail("audit/webhook-kubeconfig.yaml: expected one v1 Config")
else:
    cfg = docs[0]
    ctx = {c["name"]: c["context"] for c in cfg.get("contexts", [])}.get(cfg.get("current-context"))
    clusters = {c["name"]: c["cluster"] for c in cfg.get("clusters", [])}
    users = {u["name"] for u in cfg.get("users", [])}
    if ctx is None or ctx.get("cluster") not in clusters or ctx.get("user") not in users:
        fail("audit/webhook-kubeconfig.yaml: current-context does not resolve to a cluster and user")
    else:
        url = urlsplit(clusters[ctx["cluster"]]["server"])
        if url.hostname != "127.0.0.1" or url.path != "/api/v1/audit/webhook":
            fail(f"audit/webhook-kubeconfig.yaml: server {url.geturl()} is not the local webhook")
        for (overlay, what), port in sorted(hostports.items()):
            if port != url.port:
                fail(f"audit/webhook-kubeconfig.yaml: port {url.port}, but {overlay}: {what} hostPort {port}")
        if not hostports:
            fail("audit/webhook-kubeconfig.yaml: no rendered workload has a hostPort")
        print(f"  ok Config: server {url.geturl()} = the collector's hostPort")

with open(os.path.join(work, "total"), "w") as f:
    f.write(str(total))
if failures:
    print(f"validate-manifests: {len(failures)} problems", file=sys.stderr)
    sys.exit(1)
EOF

"$VENV/bin/python" "$work/check.py" "$work" "$K8S" "${OVERLAYS[*]}" "$KUBE_VERSIONS"

# --- trawl config check ------------------------------------------------------------------------

if [ -z "${TRAWL_BIN:-}" ]; then
    say "TRAWL_BIN is not set: SKIPPED \`trawl config check\` of the ConfigMaps' trawl.toml"
else
    for overlay in "${OVERLAYS[@]}"; do
        # One line per workload container: its label, then its TRAWL_* overrides as NAME=VALUE.
        while IFS=$'\t' read -r what file envs; do
            read -r -a env_args <<<"$envs"
            say "trawl config check overlays/$overlay trawl.toml for $what ${envs:+($envs)}"
            env -i PATH="$PATH" HOME="${HOME:-/root}" "${env_args[@]}" \
                "$TRAWL_BIN" config check "$file"
        done < <("$VENV/bin/python" -c '
import json, sys
for run in json.load(open(sys.argv[1])):
    envs = " ".join(f"{k}={v}" for k, v in sorted(run["env"].items()))
    print(run["what"], run["file"], envs, sep="\t")
' "$work/$overlay.runs.json")
    done
fi

echo "manifests: $(cat "$work/total") objects valid"
