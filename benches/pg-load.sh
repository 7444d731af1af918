#!/usr/bin/env bash
# The log in PostgreSQL against the embedded store, in one run (docs/PERFORMANCE.md): starts
# a PostgreSQL cluster of its own (initdb in a temporary directory, a free port, as user
# postgres when run as root; needs the distribution's postgresql package), then runs the load
# bench (benches/load.rs) alternately on the embedded store and on 1 node (checks, appends,
# batches, a new node's catch-up), and on 2 and 3 nodes (appends, batches), each on an empty
# database. Usage: [RUNS=2] [LOAD=<bench binary>] benches/pg-load.sh
# LOAD measures a bench binary built from another commit (`cargo bench --bench load --no-run`).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-2}
. benches/pg-lib.sh
LOAD=${LOAD:-$(load_bench)}
for run in $(seq "$RUNS"); do
  echo "== embedded, run $run"
  PHASES=check,append,append-batch "$LOAD" --bench | grep '/s'
  echo "== PostgreSQL, 1 node, run $run"
  DATABASE_URL=$(database "one$run") NODES=1 PHASES=check,append,append-batch,catchup "$LOAD" --bench | grep '/s'
done
for nodes in 2 3; do
  echo "== PostgreSQL, $nodes nodes"
  DATABASE_URL=$(database "nodes$nodes") NODES=$nodes PHASES=append,append-batch "$LOAD" --bench | grep '/s'
done
