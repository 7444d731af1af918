#!/usr/bin/env bash
# How the rate of a bare request falls as the server does work for each answer, the load
# generator on the same two cores (docs/PERFORMANCE.md, #14): a build of this tree with
# benches/healthz-spin.patch (`/healthz` spins SPIN_NS nanoseconds before it answers, read once
# from the environment; never part of the product) is served on DIR with SPIN_NS = each of
# SPINS in turn; each setting is warmed with 5 s of checks, then /healthz is asked as the checks
# are (check-lib.sh's healthz.lua: same query and header) for 10 s, and, at 0, the checks too.
# ROUNDS times over the settings. Prints rate, p50, p99 and the server's CPU per answer.
# Usage: [ROUNDS=2] [SPINS="0 1000 2000 4000 8000"] [SPIN_BIN=<patched build>] benches/healthz-work.sh DIR
# (Without SPIN_BIN the patched build is made in a temporary git worktree of HEAD, sharing
# CARGO_TARGET_DIR's dependencies, removed on exit; this tree's own build is then remade.)
set -euo pipefail
cd "$(dirname "$0")/.."
store=${1:?usage: $0 DIR}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/consent-ledger/target}"
if [ -z "${SPIN_BIN:-}" ]; then
  tree=$(mktemp -d)
  trap 'git worktree remove --force "$tree/src" 2>/dev/null; rm -rf "$tree"' EXIT
  git worktree add -q --detach "$tree/src" HEAD
  git -C "$tree/src" apply "$PWD/benches/healthz-spin.patch"
  (cd "$tree/src" && cargo build --release -q --bin consent-ledger)
  SPIN_BIN="$tree/consent-ledger-spin"
  cp "$CARGO_TARGET_DIR/release/consent-ledger" "$SPIN_BIN"
  # Cargo names a workspace's crates by their path within it, so the patched tree's build
  # replaced this tree's artifacts of the crates the patch touches, and they look fresh: make
  # the patched files newer here and build this tree again, so its binary is its own.
  git apply --numstat benches/healthz-spin.patch | cut -f3 | xargs touch
  cargo build --release -q --bin consent-ledger
fi
for round in $(seq "${ROUNDS:-2}"); do
  for spin in ${SPINS:-0 1000 2000 4000 8000}; do
    (
      BIN=$SPIN_BIN
      . benches/check-lib.sh
      open_kept_store "$store"
      export SPIN_NS=$spin
      serve_ledger "$dir"
      "${ON_LOAD[@]}" wrk -t"$LOAD_THREADS" -c32 -d5s -s "$work/check.lua" -H "Authorization: Bearer $key" "$address" > /dev/null
      echo "round $round, spin $spin ns, /healthz: $(wrk_with_cpu -s "$work/healthz.lua" -H "Authorization: Bearer $key" "$address" | tr -s ' \n' ' ')"
      if [ "$spin" = 0 ]; then
        echo "round $round, checks: $(wrk_with_cpu -s "$work/check.lua" -H "Authorization: Bearer $key" "$address" | tr -s ' \n' ' ')"
      fi
    )
    sleep 1
  done
done
