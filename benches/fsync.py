#!/usr/bin/env python3
"""Time of an fsync on this disk: 300 writes of 4 KiB, each followed by os.fsync, in the
current directory (put it on the disk the data directory lives on). Prints p50 and p99.
Usage: python3 benches/fsync.py"""
import os
import time

fd = os.open("fsync.test", os.O_WRONLY | os.O_CREAT)
try:
    times = []
    for _ in range(300):
        os.write(fd, b"x" * 4096)
        start = time.perf_counter()
        os.fsync(fd)
        times.append(time.perf_counter() - start)
    times.sort()
    print(f"fsync p50 {times[150] * 1e3:.2f} ms, p99 {times[296] * 1e3:.2f} ms")
finally:
    os.close(fd)
    os.remove("fsync.test")
