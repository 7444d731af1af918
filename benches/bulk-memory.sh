#!/usr/bin/env bash
# Peak resident memory of the server over bulk check lists of 1M and 5M lines, sent by a client
# that reads as it sends (curl) and by one that sends the whole list first (Python
# http.client), on an empty ledger. Prints the server's VmHWM after each. Needs python3, curl.
# Usage: benches/bulk-memory.sh
set -euo pipefail
PORT=18282
source "$(dirname "$0")/server.sh"
for n in 1000000 5000000; do
  python3 -c "
import sys
with open('$DIR/list-$n.ndjson', 'w') as o:
    for i in range($n): o.write('{\"email\":\"p%d@example.org\",\"purpose\":\"newsletter\"}\n' % i)"
done
hwm() { grep VmHWM /proc/$SERVER/status | awk '{printf "%.0f MB", $2/1024}'; }
echo "idle: $(hwm)"
for n in 1000000 5000000; do
  start=$(date +%s%N)
  lines=$(curl -s -X POST localhost:$PORT/v1/checks -H "Authorization: Bearer $KEY" -H 'content-type: application/x-ndjson' \
    -T "$DIR/list-$n.ndjson" | wc -l)
  echo "curl (reads as it sends), $n lines: $lines answers in $(( ($(date +%s%N) - start) / 1000000 )) ms, peak $(hwm)"
done
for n in 1000000 5000000; do
  KEY=$KEY PORT=$PORT F="$DIR/list-$n.ndjson" python3 -c "
import http.client, os, time
body = open(os.environ['F'], 'rb').read()
t = time.time()
c = http.client.HTTPConnection('127.0.0.1', int(os.environ['PORT']), timeout=600)
c.request('POST', '/v1/checks', body=body, headers={'Authorization': 'Bearer ' + os.environ['KEY'], 'content-type': 'application/x-ndjson'})
r = c.getresponse(); n = 0
while True:
    b = r.read(1 << 20)
    if not b: break
    n += b.count(b'\n')
print('python (sends first), %s lines: %d answers in %.1f s, ' % (os.environ['F'].split('-')[-1].split('.')[0], n, time.time() - t), end='')"
  echo "peak $(hwm)"
done
