#!/usr/bin/env python3
"""Run a command with a shorter EEVDF slice (docs/PERFORMANCE.md 'steering', #14).

Usage: python3 benches/sched-slice.py MICROSECONDS COMMAND [ARG...]

Sets this process's `sched_runtime` (the slice Linux 6.12+ gives a SCHED_OTHER task, 0.1 to
100 ms; the default here is 0.7 ms times 1 + log2 of the CPUs) with `sched_setattr`, then
executes COMMAND in its place: the slice is kept across the exec and every thread the command
starts inherits it (see `se.slice` in /proc/PID/task/TID/sched). As a "build" of
benches/check-ab.sh: a script `exec python3 benches/sched-slice.py 100 <binary> "$@"`.
"""
import ctypes
import os
import struct
import sys

SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}[os.uname().machine]


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[2])
    runtime_ns = int(sys.argv[1]) * 1000
    # struct sched_attr (version 1, 56 bytes): size, policy (SCHED_OTHER), flags, nice,
    # priority, runtime, deadline, period, util_min, util_max.
    attr = ctypes.create_string_buffer(struct.pack("IIQiIQQQII", 56, 0, 0, os.nice(0), 0, runtime_ns, 0, 0, 0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_SCHED_SETATTR, 0, attr, 0) != 0:
        sys.exit(f"sched_setattr: {os.strerror(ctypes.get_errno())}")
    os.execvp(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
