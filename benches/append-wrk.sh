#!/usr/bin/env bash
# Durable single appends through the real server (docs/PERFORMANCE.md, 2026-12-07 "memory"):
# serves an empty ledger (benches/server.sh) and sends `POST /v1/events`, a consent of a
# subject drawn at random, with wrk (two threads, 32 connections, 10 s). The server's options
# come from the environment (CONSENT_LEDGER_CACHE_MB, ...); BIN measures another build.
# Usage: [BIN=...] benches/append-wrk.sh
set -euo pipefail
PORT=18191
source "$(dirname "$0")/server.sh"
lua=$(mktemp)
trap 'kill $SERVER 2>/dev/null; rm -rf "$DIR" "$lua"' EXIT
cat > "$lua" <<'LUA'
local auth = "Bearer " .. os.getenv("KEY")
request = function()
  local body = '{"type":"consent.granted","subject":"S-' .. math.random(1, 1000000) ..
    '","purpose":"newsletter","actor":{"kind":"system"}}'
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
end
LUA
KEY=$KEY wrk -t2 -c32 -d10s --latency -s "$lua" "http://127.0.0.1:$PORT" | grep -E "Requests/sec| 99%|Non-2xx"
