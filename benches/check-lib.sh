# Shared by the single-check benchmarks (check-vs-pg.sh, check-profile.sh); sourced, not run.
# Needs BIN (the consent-ledger binary) and work (a temporary directory) set by the caller.

# Prints a new check-role API key of the bench controller in the ledger at $1.
check_key() {
  "$BIN" apikey create --data-dir "$1" --controller bench --role check | grep -o 'clk_[A-Za-z0-9_-]*' | head -1
}

# Writes $work/check.lua: checks by email for the newsletter over $1 tenants, in a scattered
# order (every tenant once per $1 requests of a wrk thread).
write_check_lua() {
  cat > "$work/check.lua" <<LUA
counter = 0
request = function()
  counter = counter + 1
  local t = (counter * 7919) % $1
  return wrk.format("GET", "/v1/check?purpose=newsletter&channel=email&email=tenant" .. t .. "%40example.org")
end
LUA
}

# Serves the ledger at $1 (further arguments go to `serve`) on a free port; sets `server` (its
# pid, for the caller's cleanup) and `address` once it listens.
serve_ledger() {
  local dir=$1
  shift
  "$BIN" serve --data-dir "$dir" --listen 127.0.0.1:0 "$@" > "$work/serve.out" 2>/dev/null &
  server=$!
  for _ in $(seq 600); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
  address=$(sed -n 's/^listening on //p' "$work/serve.out")
}
