# A PostgreSQL cluster of a benchmark's own (sourced, not run): initdb in a temporary
# directory, a free port, as user postgres when run as root (the distribution's postgresql
# package), stopped and removed when the script exits. Used by pg-load.sh, nodes-cpu.sh and
# verify-database.sh.
PGBIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
PGDIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
AS=()
if [ "$(id -u)" -eq 0 ]; then chown postgres "$PGDIR"; AS=(runuser -u postgres --); fi
"${AS[@]}" "$PGBIN/initdb" -D "$PGDIR/data" -A trust -U postgres >/dev/null
"${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -o "-p $PORT -k $PGDIR -c listen_addresses=127.0.0.1" -l "$PGDIR/log" -w start >/dev/null
trap '"${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate -w stop >/dev/null 2>&1; rm -rf "$PGDIR"' EXIT
# A new, empty database named $1; prints its URL.
database() { "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$1"; echo "postgres://postgres@127.0.0.1:$PORT/$1"; }
# The load bench's binary (benches/load.rs), built if need be; prints its path.
load_bench() {
  cargo bench --bench load --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "load" and m.get("executable"): print(m["executable"])' | tail -1
}
