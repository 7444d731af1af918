#!/usr/bin/env python3
"""Shares of a profile's samples by call stack (docs/PERFORMANCE.md, #14), from
`perf script -F comm,tid,ip,sym -i FILE` (the samples benches/check-profile.sh keeps with
PERF_DATA=FILE) on standard input.

  below FRAME      samples whose stack passes through FRAME (a substring of a symbol), split
                   by the frame just under its outermost match: where FRAME's time goes
  through LEAF F1 F2 ...
                   samples whose innermost frame matches LEAF, split by which of F1, F2, ...
                   their stack passes through first (from the leaf): who calls LEAF

Every share is of all the samples. Usage:
  perf script -F comm,tid,ip,sym -i FILE | benches/perf-stacks.py below check_many
  perf script -F comm,tid,ip,sym -i FILE | benches/perf-stacks.py through LZ4_decompress Block_kIndex Block_kData
"""
import collections
import re
import sys


def stacks(lines):
    """Each sample's frames, innermost first."""
    cur = None
    for line in lines:
        if not line.strip():
            if cur:
                yield cur
            cur = None
        elif line[0] in " \t":
            if cur is not None:
                cur.append(re.sub(r"^[0-9a-f]+ ", "", line.strip()))
        else:
            if cur:
                yield cur
            cur = []
    if cur:
        yield cur


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("below", "through"):
        sys.exit(__doc__)
    mode, target, frames = sys.argv[1], sys.argv[2], sys.argv[3:]
    total, matched, split = 0, 0, collections.Counter()
    for s in stacks(sys.stdin):
        total += 1
        if mode == "below":
            hits = [i for i, f in enumerate(s) if target in f]
            if not hits:
                continue
            outer = max(hits)
            split[s[outer - 1] if outer > 0 else "(itself)"] += 1
        else:
            if target not in s[0]:
                continue
            split[next((f for frame in s for f in frames if f in frame), "(none of them)")] += 1
        matched += 1
    if not total:
        sys.exit("no samples read")
    print(f"{total} samples; {matched} ({100 * matched / total:.1f} %) {mode} {target}")
    for what, n in split.most_common(25):
        print(f"{100 * n / total:6.2f} %  {what[:140]}")


main()
