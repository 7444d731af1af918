#!/bin/bash
# Rebuild timings of several builds, alternated: each argument is BINARY:DATA_DIR (a copy of a
# store per build, since a build refuses a store of a later format). Prints each run's replay
# rate (from `rebuild`'s own line) and the whole command's time and peak memory.
#   RUNS=2 benches/rebuild-ab.sh /tmp/cl-old:/tmp/copy-a /tmp/cl-new:/tmp/copy-b
set -euo pipefail
for _ in $(seq 1 "${RUNS:-2}"); do
  for pair in "$@"; do
    bin=${pair%%:*}
    dir=${pair#*:}
    out=$( { /usr/bin/time -f "%e s %U u %S s %M KB" "$bin" rebuild --data-dir "$dir" 2>&1; } | tr '\r' '\n' | grep -E 'replayed|KB$|rror|format' | tr '\n' ' ')
    echo "$(basename "$bin") $dir: $out"
  done
done
