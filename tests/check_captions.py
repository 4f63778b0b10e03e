#!/usr/bin/env python3
"""check_captions.py MIN_FRACTION < lines: counts lines that are exact Shapes World
captions (../shared/DESIGN.md): 1-4 objects "a <size> <color> <shape> at the <pos>"
("in the center"), distinct cells in reading order, joined "X", "X and Y",
"X, Y and Z". Prints "captions: V valid of N (P%)" and the invalid ones; exits 1
if the valid fraction is below MIN_FRACTION. Plain python3, no packages."""
import re
import sys

SIZES = ["small", "large"]
COLORS = ["red", "green", "blue", "yellow", "magenta", "cyan", "white", "orange"]
SHAPES = ["circle", "square", "triangle", "diamond", "cross"]
CELLS = ["top left", "top", "top right", "left", "center", "right",
         "bottom left", "bottom", "bottom right"]
OBJ = re.compile(r"a (%s) (%s) (%s) (?:at the (%s)|in the (center))$" % (
    "|".join(SIZES), "|".join(COLORS), "|".join(SHAPES),
    "|".join(c for c in CELLS if c != "center")))


def valid(line):
    if " and " in line:
        head, last = line.rsplit(" and ", 1)
        parts = head.split(", ") + [last]
    else:
        parts = [line]
    if not 1 <= len(parts) <= 4:
        return False
    cells = []
    for p in parts:
        m = OBJ.match(p)
        if not m:
            return False
        cells.append(CELLS.index(m.group(4) or m.group(5)))
    return all(a < b for a, b in zip(cells, cells[1:]))


def main():
    need = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    lines = [l.rstrip("\n") for l in sys.stdin if l.strip()]
    bad = [l for l in lines if not valid(l)]
    n, v = len(lines), len(lines) - len(bad)
    print("captions: %d valid of %d (%.1f%%)" % (v, n, 100.0 * v / max(n, 1)))
    for l in bad[:10]:
        print("  invalid: %r" % l)
    sys.exit(0 if n and v >= need * n else 1)


if __name__ == "__main__":
    main()
