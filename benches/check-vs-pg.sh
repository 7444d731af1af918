#!/usr/bin/env bash
# Single checks over HTTP against the table a user would build instead, in one run
# (docs/PERFORMANCE.md, #14). Usage: [SUBJECTS=200000] [RUNS=1] [CACHE_MB=N] [BIN=...] benches/check-vs-pg.sh
#
# 1. Imports SUBJECTS tenants (three purposes each, an email for every tenant; the CSV of
#    benches/import-gen.py) into a new embedded ledger with `consent-ledger import`.
# 2. Starts a PostgreSQL cluster of its own (initdb in a temporary directory, a free port, as
#    user postgres when run as root; the distribution's postgresql package) and loads the same
#    rows into one table of consent events indexed by (address, purpose, at).
# 3. Serves the ledger (release binary, one HTTP worker per core); then each run measures, one
#    after the other, with wrk (two threads, 32 connections, 10 s): `GET /healthz` (the
#    server's HTTP floor), `GET /healthz` asked the way the checks are (a request built by
#    wrk's Lua for every call, same query and header: the floor with the load generator's cost
#    equal), `GET /v1/check` by email for the newsletter, tenants drawn at random; then
#    PostgreSQL with pgbench (32 clients, two threads, 10 s) and a prepared "latest event for
#    this address and purpose" query over the same tenants. Each run prints the server's
#    resident memory, the CPU time per answer of each (the ledger's: user + system of its
#    process over the run / answers; PostgreSQL's: its backends' time, which the postmaster
#    counts once they end with their connections) and the run's ratios, checks to PostgreSQL
#    and to `/healthz` asked as the checks: measured within the same minute, so a host whose
#    speed drifts weighs on both sides (until 2026-12-07 every ledger run came before every
#    PostgreSQL run). Both servers stay up throughout; the one not measured is idle.
# Needs wrk and the postgresql package. BIN measures another build (an A/B in one run);
# CACHE_MB serves with `--cache-mb N`; RUNS repeats each measurement (the caches warm up);
# STORE=DIR serves the ledger in DIR (imported there on the first run and kept, as
# check-series.sh and check-profile.sh keep theirs) instead of importing anew;
# PIN=1 gives the server (and PostgreSQL) core 1 and the load generators core 0 (check-lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/check-lib.sh
N=${SUBJECTS:-200000}
RUNS=${RUNS:-1}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/consent-ledger/target}"
if [ -z "${BIN:-}" ]; then cargo build --release -q; BIN="$CARGO_TARGET_DIR/release/consent-ledger"; fi
work=$(mktemp -d)
PGBIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
AS=()
if [ "$(id -u)" -eq 0 ]; then chmod 755 "$work"; AS=(runuser -u postgres --); fi
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  [ -d "$work/pg" ] && "${AS[@]}" "$PGBIN/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${STORE:-}" ]; then
  ledger=$STORE
  if [ ! -d "$ledger" ]; then BIN="$BIN" KEEP="$ledger" benches/import.sh $((3 * N)); fi
  echo "== the embedded ledger in $ledger ($N subjects)"
else
  ledger=$work/ledger
  echo "== loading $N subjects ($((3 * N)) rows) into the embedded ledger"
  BIN="$BIN" KEEP="$ledger" benches/import.sh $((3 * N))
fi
key=$(check_key "$ledger")
write_check_lua "$N"
write_healthz_lua "$N"

echo "== PostgreSQL $("$PGBIN/postgres" --version | awk "{print \$3}"): one table, $((3 * N)) consent events"
mkdir "$work/pg"; [ ${#AS[@]} -gt 0 ] && chown postgres "$work/pg"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${AS[@]}" "$PGBIN/initdb" -D "$work/pg/data" -A trust -U postgres >/dev/null
"${ON_SERVER[@]}" "${AS[@]}" "$PGBIN/pg_ctl" -D "$work/pg/data" -o "-p $PORT -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=100" \
  -l "$work/pg/log" -w start >/dev/null
psql=("$PGBIN/psql" -q -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1)
"${psql[@]}" -c "CREATE TABLE consent_events (id bigserial PRIMARY KEY, subject text NOT NULL, address text NOT NULL,
  purpose text NOT NULL, channel text NOT NULL, granted boolean NOT NULL, at timestamptz NOT NULL)"
# The same rows as the ledger's import: one event per row, by the row's email address.
python3 benches/import-gen.py $((3 * N)) | python3 -c '
import csv, sys
r = csv.reader(sys.stdin); next(r); w = csv.writer(sys.stdout)
names = {"Newsletter": "newsletter", "events": "events", "surveys": "surveys"}
for row in r:
    d, m, y = row[7].split("/")
    w.writerow([row[1], row[2], names[row[4]], row[6], row[5] == "Y", f"{y}-{m}-{d}T00:00:00Z"])' |
  "${psql[@]}" -c "COPY consent_events (subject, address, purpose, channel, granted, at) FROM STDIN WITH (FORMAT csv)"
"${psql[@]}" -c "CREATE INDEX consent_events_latest ON consent_events (address, purpose, at DESC)" -c "VACUUM ANALYZE consent_events"
cat > "$work/latest.sql" <<SQL
\set t random(0, $((N - 1)))
SELECT granted, at FROM consent_events WHERE address = 'tenant' || :t || '@example.org' AND purpose = 'newsletter' ORDER BY at DESC LIMIT 1;
SQL
postmaster=$(head -1 "$work/pg/data/postmaster.pid")

serve_ledger "$ledger" ${CACHE_MB:+--cache-mb "$CACHE_MB"}
curl -sf --retry 20 --retry-all-errors --retry-delay 1 "$address/v1/check?purpose=newsletter&channel=email&email=tenant1%40example.org" -H "Authorization: Bearer $key" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print("one check:", "permitted" if d["permitted"] else "not permitted", d["reason"])'
echo "resident after start: $(($(ps -o rss= -p "$server") / 1024)) MB"
rate() { awk '/Requests\/sec/ {print $2}'; }
for run in $(seq "$RUNS"); do
  echo "== run $run: GET /healthz, 32 connections"
  wrk_with_cpu "$address/healthz"
  echo "== run $run: GET /healthz asked as the checks are (a request built per call, same query and header)"
  floor=$(wrk_with_cpu -s "$work/healthz.lua" -H "Authorization: Bearer $key" "$address")
  echo "$floor"
  echo "== run $run: GET /v1/check by email, 32 connections, $N subjects"
  checks=$(wrk_with_cpu -s "$work/check.lua" -H "Authorization: Bearer $key" "$address")
  echo "$checks"
  echo "resident: $(($(ps -o rss= -p "$server") / 1024)) MB"
  echo "== run $run: pgbench, prepared latest-event query, 32 clients, $LOAD_THREADS threads, 10 s"
  before=$(cpu_ticks "$postmaster")
  out=$("${ON_LOAD[@]}" "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -n -M prepared -c 32 -j "$LOAD_THREADS" -T 10 \
    -f "$work/latest.sql" postgres)
  sleep 1 # the backends end with their connections; the postmaster then counts their time
  after=$(cpu_ticks "$postmaster")
  echo "$out" | grep -E "^tps|latency average|failed"
  answers=$(echo "$out" | awk '/number of transactions actually processed/ {print $NF}')
  echo "  PostgreSQL CPU per answer (its backends, counted by the postmaster): $(per_answer $((after - before)) "$answers")"
  tps=$(echo "$out" | awk '/^tps/ {print $3}')
  awk -v c="$(echo "$checks" | rate)" -v f="$(echo "$floor" | rate)" -v p="$tps" -v r="$run" \
    'BEGIN { printf "== run %d: checks / PostgreSQL %.2f, checks / healthz asked as the checks %.2f\n", r, c / p, c / f }'
done
