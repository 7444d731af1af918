#!/usr/bin/env bash
# Single-check throughput and latency of the real release binary, measured with wrk (a C load
# generator, lighter than the Rust client of benches/load.rs). Needs wrk (apt-get install wrk)
# and python3. Usage: [WORKERS=N] benches/check-wrk.sh [CONNECTIONS...]   (default: 4 16 32)
set -euo pipefail
PORT=18181
source "$(dirname "$0")/server.sh"
KEY="$KEY" PORT="$PORT" python3 - <<'PY'
import json, os, urllib.request
key, port = os.environ["KEY"], os.environ["PORT"]
for c in range(0, 10000, 300):
    evs = []
    for s in range(c, c + 300):
        evs.append({"type": "contact.linked", "subject": f"S-{s}", "contact": {"channel": "email", "address": f"person{s}@example.org"}, "actor": {"kind": "system"}})
        evs.append({"type": "consent.granted", "subject": f"S-{s}", "purpose": "newsletter", "actor": {"kind": "system"}})
        if s % 3 == 0:
            evs.append({"type": "consent.withdrawn", "subject": f"S-{s}", "purpose": "newsletter", "channel": "email", "actor": {"kind": "system"}})
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events/batch", data=json.dumps(evs).encode(),
                                 headers={"Authorization": "Bearer " + key, "content-type": "application/json"})
    urllib.request.urlopen(req).read()
PY
# One check by hand first: the load below must be of answered checks, not of errors (wrk
# prints a "Non-2xx" line when any answer was not a 200).
curl -sf "localhost:$PORT/v1/check?purpose=newsletter&channel=email&email=person1%40example.org" \
  -H "Authorization: Bearer $KEY" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("one check:", "permitted" if d["permitted"] else "not permitted", d["reason"])'
LUA=$(mktemp --suffix=.lua)
cat > "$LUA" <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  local s = (counter * 7919) % 10000
  return wrk.format("GET", "/v1/check?purpose=newsletter&channel=email&email=person" .. s .. "%40example.org")
end
LUA
for c in "${@:-4 16 32}"; do
  for conns in $c; do
    echo "== $conns connections, 10 s, 10 000 subjects"
    wrk -t1 -c"$conns" -d10s --latency -s "$LUA" -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT | grep -E " 50%| 99%|Requests/sec|Non-2xx|Socket errors"
  done
done
rm -f "$LUA"
