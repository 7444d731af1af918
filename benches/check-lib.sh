# Shared by the single-check benchmarks (check-vs-pg.sh, check-profile.sh, check-series.sh); sourced, not run.
# Needs BIN (the consent-ledger binary) and work (a temporary directory) set by the caller.

# Prints a new check-role API key of the bench controller in the ledger at $1.
check_key() {
  "$BIN" apikey create --data-dir "$1" --controller bench --role check | grep -o 'clk_[A-Za-z0-9_-]*' | head -1
}

# Writes $work/$1.lua: GET $2 with the query of a check by email for the newsletter of a
# tenant drawn at random from $3 (uniformly, as check-vs-pg.sh's pgbench script draws its
# address; each wrk thread seeded apart, and anew each run), a request built by Lua for every
# call. (Until 2026-12-06 the tenants came in one fixed scattered order that began again with
# every wrk run, so runs shorter than the list asked the same first part of it again and
# again: at 1 million tenants a 10 s run saw 40 %, and the caches held that part.)
write_random_lua() {
  cat > "$work/$1.lua" <<LUA
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("seed", os.time() * 64 + threads)
end
local seeded = false
request = function()
  if not seeded then
    math.randomseed(seed or os.time())
    seeded = true
  end
  local t = math.random(0, $3 - 1)
  return wrk.format("GET", "$2?purpose=newsletter&channel=email&email=tenant" .. t .. "%40example.org")
end
LUA
}

# Writes $work/check.lua: checks by email over $1 tenants.
write_check_lua() { write_random_lua check /v1/check "$1"; }

# Writes $work/healthz.lua: /healthz asked the way check.lua asks checks (the same query and,
# given by the caller, the same Authorization header), so that the load generator's own cost
# is the same on both sides of the ratio.
write_healthz_lua() { write_random_lua healthz /healthz "$1"; }

# The CPU time (user + system, in clock ticks) process $1 has used so far, with that of its
# children that have ended (PostgreSQL's backends end with their connections).
cpu_ticks() {
  # Fields 14 to 17 of /proc/PID/stat, counted after the command name's closing parenthesis.
  sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13 + $14 + $15}'
}

# Prints the CPU time per answer in microseconds: $1 ticks over $2 answers.
per_answer() {
  awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f us\n", t * 1000000 / hz / n }'
}

# PIN=1 puts the server on core 1 with one HTTP worker and the load generator on core 0 with
# one thread (and PostgreSQL and pgbench likewise), so neither preempts the other: the rates
# are then of one core each, and the latencies the server's own, not the scheduler's.
if [ "${PIN:-}" = 1 ]; then
  ON_SERVER=(taskset -c 1)
  ON_LOAD=(taskset -c 0)
  LOAD_THREADS=1
  SERVE_ARGS=(--workers 1)
else
  ON_SERVER=()
  ON_LOAD=()
  LOAD_THREADS=2
  SERVE_ARGS=()
fi
# WORKERS=N serves with N HTTP workers (the server's default is one per core).
if [ -n "${WORKERS:-}" ]; then
  SERVE_ARGS=(--workers "$WORKERS")
fi

# Runs wrk with "$@" against the server $server for DUR seconds (10 unless set) and prints its
# rate, latencies and the server's CPU time per answer (microseconds; user + system of the
# server process over the run divided by the answers), which the load generator sharing the
# cores does not distort. A caller that defines `during_wrk` has it called with wrk's pid a
# second into the run, and its output printed after the rest.
wrk_with_cpu() {
  local before after out requests load during=
  before=$(cpu_ticks "$server")
  "${ON_LOAD[@]}" wrk -t"$LOAD_THREADS" -c32 -d"${DUR:-10}"s --latency "$@" > "$work/wrk.out" &
  load=$!
  if declare -F during_wrk > /dev/null; then
    sleep 1
    during=$(during_wrk "$load")
  fi
  wait "$load"
  after=$(cpu_ticks "$server")
  out=$(cat "$work/wrk.out")
  echo "$out" | grep -E " 50%| 99%|Requests/sec|Non-2xx|Socket errors"
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "  server CPU per answer: $(per_answer $((after - before)) "$requests")"
  if [ -n "$during" ]; then echo "  $during"; fi
}

# Serves the ledger at $1 (further arguments go to `serve`) on a free port; sets `server` (its
# pid, for the caller's cleanup) and `address` once it listens.
serve_ledger() {
  local dir=$1
  shift
  "${ON_SERVER[@]}" "$BIN" serve --data-dir "$dir" --listen 127.0.0.1:0 "${SERVE_ARGS[@]}" "$@" > "$work/serve.out" 2>"${SERVE_LOG:-/dev/null}" &
  server=$!
  for _ in $(seq 600); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
  address=$(sed -n 's/^listening on //p' "$work/serve.out")
}

# The value of the served ledger's metric $1 (a series without labels).
metric() {
  curl -s "$address/metrics" | awk -v m="$1" '$1 == m {print $2}'
}

# Waits (at most 10 minutes) until the served ledger's facts cache stops gaining entries,
# looking once a second (a warm-up reading rows back or filling from the store), and prints
# how many it holds.
settled_entries() {
  local now last=-1
  for _ in $(seq 600); do
    now=$(metric consent_ledger_facts_cache_entries)
    [ "$now" = "$last" ] && break
    last=$now
    sleep 1
  done
  echo "$now"
}

# The start of a bench on a kept store: DIR=$1 (imported there with benches/import.sh on the
# first run, SUBJECTS tenants, kept for the next), N, BIN (built unless given), a temporary
# $work removed on exit with the server, key (a check-role API key) and check.lua and
# healthz.lua over the N tenants.
open_kept_store() {
  dir=${1:?usage: $0 DIR}
  N=${SUBJECTS:-200000}
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/consent-ledger/target}"
  if [ -z "${BIN:-}" ]; then cargo build --release -q; BIN="$CARGO_TARGET_DIR/release/consent-ledger"; fi
  if [ ! -d "$dir" ]; then BIN="$BIN" KEEP="$dir" benches/import.sh $((3 * N)) > /dev/null; fi
  work=$(mktemp -d)
  server=
  # The server is waited for, so that a bench run right after this one finds the store's lock
  # free (a server closing cleanly flushes its memtables and saves its cache's keys first).
  trap '[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
  key=$(check_key "$dir")
  write_check_lua "$N"
  write_healthz_lua "$N"
}
