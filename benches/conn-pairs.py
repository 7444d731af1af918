#!/usr/bin/env python3
"""Which of a load generator's threads' connections each server worker holds (docs/PERFORMANCE.md
'2026-12-08 (steering)', #14). Usage, while wrk runs against the server on this host:

    python3 benches/conn-pairs.py SERVER_PID WRK_PID

Each thread of either process waits on an epoll instance of its own; an instance's entries
(/proc/PID/fdinfo) name the sockets it watches, and /proc/net/tcp the ports of each. Prints a
line per server worker: how many of its connections come from each wrk thread, e.g.
"13/3 3/13" (paired: each wrk thread talks mostly to one worker) or "8/8 8/8" (each to both).
"""
import os
import re
import sys


def ports_by_inode():
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).readlines()[1:]:
            f = line.split()
            ports[f[9]] = (int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16))
    return ports


def epoll_sockets(pid):
    """The socket inodes each epoll instance of `pid` watches (instances watching two or more)."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if "eventpoll" not in os.readlink(f"/proc/{pid}/fd/{fd}"):
                continue
            targets = re.findall(r"tfd:\s*(\d+)", open(f"/proc/{pid}/fdinfo/{fd}").read())
        except OSError:
            continue
        inodes = set()
        for t in targets:
            try:
                m = re.match(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{t}"))
            except OSError:
                continue
            if m:
                inodes.add(m.group(1))
        if len(inodes) > 1:
            found[frozenset(inodes)] = inodes  # a worker may hold two instances watching the same
    return list(found.values())


def main():
    server, wrk = int(sys.argv[1]), int(sys.argv[2])
    ports = ports_by_inode()
    # A server connection's remote port is the wrk connection's local port.
    workers = [{ports[i][1] for i in s if i in ports} for s in epoll_sockets(server)]
    threads = [{ports[i][0] for i in s if i in ports} for s in epoll_sockets(wrk)]
    workers = [w for w in workers if w & set().union(*threads)]
    print(" ".join("/".join(str(len(w & t)) for t in threads) for w in workers))


if __name__ == "__main__":
    main()
