#!/usr/bin/env python3
"""Per-step kernel time table from `ncu --csv --metrics gpu__time_duration.sum` output: steps start at
each embedding kernel; for every step, the kernels grouped by name with count, total and mean time.
  ncu_summary.py ncu.csv"""
import csv, re, sys
from collections import OrderedDict

rows = []
with open(sys.argv[1]) as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    name = r["Kernel Name"]
    short = re.sub(r"\(.*", "", name)
    short = re.sub(r"elm::cuda::\(anonymous namespace\)::", "", short)
    short = re.sub(r"elm::DType\)", "", short).replace("(", "")
    m = re.search(r"<.*>", name)
    rows.append((short + (m.group(0)[:40] if m else ""), float(r["Metric Value"].replace(",", "")), r["Grid Size"]))
steps, cur = [], []
for k in rows:
    if "embed_kernel" in k[0] and cur:
        steps.append(cur); cur = []
    cur.append(k)
if cur: steps.append(cur)
for i, st in enumerate(steps):
    tot = sum(t for _, t, _ in st)
    print(f"step {i}: {len(st)} kernels, {tot/1e3:.1f} us of kernel time")
    agg = OrderedDict()
    for n, t, g in st:
        a = agg.setdefault(n, [0, 0.0, g]); a[0] += 1; a[1] += t
    for n, (c, t, g) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
        print(f"  {t/1e3:9.1f} us  {c:4d} x {t/c/1e3:7.2f} us  grid {g:>16s}  {n}")
