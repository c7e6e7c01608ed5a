#!/usr/bin/env python3
"""Checks a sharded sweep against the same sweep run in one piece.

    same_sweep.py MERGED.jsonl WHOLE.jsonl SHARDS SHARD_0.jsonl ... SHARD_{SHARDS-1}.jsonl

Passes (exit 0) when
  - MERGED and WHOLE hold the same indices, each once, and for each index the same point,
    command, flags, config and outcome ("point for point"; "seconds" and the other timings are
    left out because they differ from run to run), and MERGED is sorted by index;
  - SHARD_i holds exactly the points whose index % SHARDS == i: each task ran its own shard,
    all of it, and nothing of another's.
Otherwise prints every difference found and exits 1.
"""

import json
import sys

# The fields that must agree; everything else in a line (seconds, timings, host) may differ.
COMPARED = ("sweep", "of", "point", "command", "flags", "config", "outcome")


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def by_index(lines, path, problems):
    points = {}
    for line in lines:
        i = line["index"]
        if i in points:
            problems.append(f"{path}: point {i} twice")
        points[i] = line
    return points


def main(argv):
    merged_path, whole_path, shards = argv[1], argv[2], int(argv[3])
    shard_paths = argv[4:]
    problems = []
    if len(shard_paths) != shards:
        problems.append(f"{shards} shards expected, {len(shard_paths)} files given")

    merged_lines = read(merged_path)
    merged = by_index(merged_lines, merged_path, problems)
    whole = by_index(read(whole_path), whole_path, problems)
    if not whole:
        problems.append(f"{whole_path}: no points")

    order = [line["index"] for line in merged_lines]
    if order != sorted(order):
        problems.append(f"{merged_path}: not sorted by index")
    for i in sorted(set(whole) - set(merged)):
        problems.append(f"point {i} missing from {merged_path}")
    for i in sorted(set(merged) - set(whole)):
        problems.append(f"point {i} in {merged_path} but not in {whole_path}")
    for i in sorted(set(merged) & set(whole)):
        for field in COMPARED:
            a, b = merged[i].get(field), whole[i].get(field)
            if a != b:
                problems.append(f"point {i}: {field} differs: sharded {a!r}, whole {b!r}")

    total = len(whole)
    for shard, path in enumerate(shard_paths):
        got = sorted(line["index"] for line in read(path))
        want = list(range(shard, total, shards))
        if got != want:
            problems.append(f"{path}: indices {got}, shard {shard}/{shards} of {total} is {want}")

    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
