#!/usr/bin/env bash
# The searcher-only build (`--features searcher`, the stateless search root): its dependency
# tree holds no trawl-indexer (no WAL, no ingest decoders), and its `trawl searcher` answers a
# search fanned out to an indexer of the full build.
#
# The indexer is `INDEXER_BIN` (not a `TRAWL_` name: trawl reads those as configuration), by
# default the full build's target/debug/trawl (left there by the test step; built here if it is
# absent or has no indexer role). Leaves the searcher-only binary at target/debug/trawl.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

for tree in "-p trawl-query" "-p trawl --no-default-features --features searcher"; do
  # shellcheck disable=SC2086 # the arguments are split on purpose
  if cargo tree $tree -e normal | grep trawl-indexer; then
    echo "cargo tree $tree -e normal lists trawl-indexer"
    exit 1
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/trawl-searcher-only.XXXXXX")
pids=()
# The two binaries are about 1 GB together: nothing is left behind on the runner.
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
full="${INDEXER_BIN:-$target/debug/trawl}"
if ! "$full" indexer --help > /dev/null 2>&1; then
  cargo build -p trawl --bin trawl
  full="$target/debug/trawl"
fi
cp "$full" "$work/trawl-full"
cargo build -p trawl --bin trawl --no-default-features --features searcher
cp "$target/debug/trawl" "$work/trawl-searcher"

# Prints the URL a server writes to `$1` once it listens and is ready, or fails with its log.
url_of() {
  local url=""
  for _ in $(seq 1 300); do
    url=$(grep -o 'http://[0-9.:]*' "$1" || true)
    [ -n "$url" ] && curl -sf "$url/health/ready" > /dev/null && { echo "$url"; return; }
    sleep 0.1
  done
  cat "$2" >&2
  echo "server did not start" >&2
  return 1
}

"$work/trawl-full" indexer --listen 127.0.0.1:0 --data-dir "$work/indexer" \
  > "$work/indexer.out" 2> "$work/indexer.log" &
pids+=($!)
indexer=$(url_of "$work/indexer.out" "$work/indexer.log")
printf '[query]\nindexers = ["%s"]\n' "$indexer" > "$work/searcher.toml"
"$work/trawl-searcher" searcher --config "$work/searcher.toml" --listen 127.0.0.1:0 \
  --data-dir "$work/searcher" > "$work/searcher.out" 2> "$work/searcher.log" &
pids+=($!)
searcher=$(url_of "$work/searcher.out" "$work/searcher.log")

printf '%s\n' '{"message":"searcher smoke one"}' '{"message":"searcher smoke two"}' \
  '{"message":"searcher smoke three"}' \
  | curl -sf --data-binary @- "$indexer/api/v1/logs/ingest" | grep -q '"accepted":3'
# Ingest answers once durable; the hot index is searchable within a commit interval.
for _ in $(seq 1 300); do
  answer=$(curl -sf "$searcher/api/v1/logs/search?q=smoke&limit=0")
  grep -q '"total":3' <<< "$answer" && break
  sleep 0.1
done
grep -q '"total":3' <<< "$answer" || { echo "searcher answered: $answer"; exit 1; }
echo "searcher-only build: trawl searcher answered $answer"
