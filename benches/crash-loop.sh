#!/usr/bin/env bash
# The crash loop at full length: 50 rounds of kill -9 of the release server under 16
# concurrent writers; after each restart every acknowledged event is present and unchanged and
# `consent-ledger verify` passes. Prints each restart's time (spawn to listening) in ms.
# Usage: [CRASH_ROUNDS=N] benches/crash-loop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CRASH_ROUNDS="${CRASH_ROUNDS:-50}" cargo test --release --test api crash -- --nocapture 2>&1 | grep -E "crash loop|test result|panicked"
