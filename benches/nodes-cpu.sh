#!/usr/bin/env bash
# Where the CPU goes while database nodes take appends (docs/PERFORMANCE.md, #13): starts a
# PostgreSQL cluster of its own (benches/pg-lib.sh), runs the load bench's single appends for
# 12 s on NODES nodes written through WRITERS of them, and over 5 s in the middle of the run
# prints the host's idle share (from /proc/stat) and the CPU each kind of thread of the bench
# process used (from /proc/PID/task/*/stat, summed by thread name: `group-commit` is the nodes'
# writers, `actix-server wo` their HTTP workers, `tokio-rt-worker` the load generator's client
# and the nodes' runtimes). Usage: [NODES=3] [WRITERS=1] [LOAD=<bench binary>] benches/nodes-cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/pg-lib.sh
LOAD=${LOAD:-$(load_bench)}
# Ticks of CPU used by each thread name of process $1.
threads() {
  for t in /proc/"$1"/task/*; do
    echo "$(tr ' ' _ < "$t/comm") $(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')"
  done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
idle() { awk '/^cpu / {print $5 + $6}' /proc/stat; }
out=$(mktemp)
DATABASE_URL=$(database nodes) NODES=${NODES:-3} WRITERS=${WRITERS:-1} PHASES=append SECONDS=12 "$LOAD" --bench > "$out" 2>&1 &
bench=$!
sleep 5
threads "$bench" > "$out.t1"
i1=$(idle)
sleep 5
threads "$bench" > "$out.t2"
i2=$(idle)
wait "$bench"
grep '/s' "$out"
hz=$(getconf CLK_TCK)
echo "host idle: $(awk -v d=$((i2 - i1)) -v hz="$hz" -v n="$(nproc)" 'BEGIN {printf "%.0f %%", 100 * d / (5 * hz * n)}')"
join "$out.t1" "$out.t2" | awk -v hz="$hz" '{d = $3 - $2; if (d > 0) printf "%s %.0f %% of a core\n", $1, 100 * d / (5 * hz)}' | sort -k2 -rn
rm -f "$out" "$out.t1" "$out.t2"
