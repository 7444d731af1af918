# Sourced by the benchmark scripts: builds the release binary and starts it on an empty
# ledger in a temporary directory, on port $PORT, with the newsletter purpose defined.
# Sets BIN, DIR, KEY (admin, record, check) and SERVER; stops the server and removes the
# directory on exit. Honours WORKERS, and BIN (a binary to measure instead of building this
# checkout's, e.g. one built from an older commit for an A/B in the same run).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${BIN:-}" ]; then
  cargo build --release -q
  BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c "import json,sys; print(json.load(sys.stdin)['target_directory'])")/release/consent-ledger"
fi
DIR=$(mktemp -d)
KEY=$("$BIN" apikey create --data-dir "$DIR" --controller council --role admin --role record --role check)
"$BIN" serve --data-dir "$DIR" --listen 127.0.0.1:$PORT ${WORKERS:+--workers "$WORKERS"} >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
sleep 1
curl -sf -X PUT localhost:$PORT/v1/purposes/newsletter -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
  -d '{"title":"Newsletter","basis":"consent","marketing":true,"channels":["email","post","sms"],"consent_valid_days":730}' >/dev/null
