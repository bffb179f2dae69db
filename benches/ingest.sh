#!/usr/bin/env bash
# Event ingest under load, as an operator would measure it: the release `tidings serve`
# on SQLite (a file in a temporary folder) and on PostgreSQL (a fresh database), driven by
# `wrk` with 64 keep-alive connections posting `POST /v1/events` (benches/ingest/events.lua:
# one event a request, unique ids, members cycling over 100,000). The ceiling in the same
# run: `GET /healthz` on the same server, same connections (HTTP + routing + JSON, no
# store). Every 202 means committed (the group-commit writer answers after the commit).
# The server runs the repository's tidings.toml and example journeys, so its engine takes
# the events from the inbox while they arrive, as in production.
#
#   bash benches/ingest.sh            # env: CONNECTIONS (64), DURATION (10, seconds), THREADS (2),
#                                     # TIDINGS_BENCH_POSTGRES_URL (else the test URL; skip PG when unset),
#                                     # TIDINGS_BIN (another build to measure, e.g. the previous one),
#                                     # PG_COLLATE (the new database's LC_COLLATE, e.g. C)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
PG=${TIDINGS_BENCH_POSTGRES_URL:-${TIDINGS_TEST_POSTGRES_URL:-}}
if [ -z "${TIDINGS_BIN:-}" ]; then SQLX_OFFLINE=true cargo build --release --locked --bin tidings >/dev/null; fi
bin=${TIDINGS_BIN:-target/release/tidings}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=18931

serve() { # $1 = database URL
  TIDINGS_DATABASE_URL="$1" TIDINGS_LISTEN="127.0.0.1:$port" TIDINGS_API_TOKEN=bench-token \
    TIDINGS_LINK_SECRET=bench-link-secret-0123456789abcdef \
    RUST_LOG=warn "$bin" serve >"$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  echo "serve did not start:" >&2; cat "$work/serve.log" >&2; exit 1
}

measure() { # $1 = label
  local ceiling events rss
  ceiling=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/healthz" \
    | awk '/Requests\/sec/ {print $2}')
  events=$(RUN="$1-$(date +%s)" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s benches/ingest/events.lua \
    "http://127.0.0.1:$port" | grep '^RESULT')
  rss=$(awk '/VmHWM/ {print $2 / 1024 " MiB"}' "/proc/$server/status")
  echo "$1 | healthz ${ceiling}/s | events: ${events#RESULT } | serve peak RSS $rss | load $(cut -d' ' -f1-3 /proc/loadavg)"
}

echo "tidings serve, $CONNECTIONS connections, $THREADS wrk threads, ${DURATION} s each ($(date -u +%F))"
serve "sqlite://$work/ingest.db"
measure sqlite
kill "$server"; wait "$server" 2>/dev/null || true

if [ -n "$PG" ]; then
  db="tidings_bench_ingest_$$"
  create="CREATE DATABASE $db"
  if [ -n "${PG_COLLATE:-}" ]; then create="$create TEMPLATE template0 LC_COLLATE '$PG_COLLATE'"; fi
  psql "$PG" -qc "DROP DATABASE IF EXISTS $db" -c "$create" >/dev/null
  serve "${PG%/*}/$db"
  measure "postgres${PG_COLLATE:+ (LC_COLLATE $PG_COLLATE)}"
  kill "$server"; wait "$server" 2>/dev/null || true
  psql "$PG" -qc "DROP DATABASE $db" >/dev/null
else
  echo "postgres: skipped (set TIDINGS_BENCH_POSTGRES_URL or TIDINGS_TEST_POSTGRES_URL)"
fi
