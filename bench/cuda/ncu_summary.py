#!/usr/bin/env python3
"""Per-step kernel time table from `ncu --csv --metrics gpu__time_duration.sum` output: steps start at
each embedding kernel; for every step, the kernels grouped by name with count, total and mean time.
  ncu_summary.py ncu.csv"""
import csv, re, sys
from collections import OrderedDict

rows, dram = [], {}
with open(sys.argv[1]) as f:
    lines = [l for l in f if l.startswith('"')]
recs = list(csv.DictReader(lines))
for r in recs:
    if r.get("Metric Name") == "dram__bytes_read.sum":
        dram[r["ID"]] = float(r["Metric Value"].replace(",", ""))
for r in recs:
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    name = r["Kernel Name"]
    short = re.sub(r"\(.*", "", name)
    short = re.sub(r"elm::cuda::\(anonymous namespace\)::", "", short)
    short = re.sub(r"elm::DType\)", "", short).replace("(", "")
    m = re.search(r"<.*>", name)
    rows.append((short + (m.group(0)[:40] if m else ""), float(r["Metric Value"].replace(",", "")), r["Grid Size"],
                 dram.get(r["ID"], 0.0)))
steps, cur = [], []
for k in rows:
    if "embed_kernel" in k[0] and cur:
        steps.append(cur); cur = []
    cur.append(k)
if cur: steps.append(cur)
for i, st in enumerate(steps):
    tot = sum(t for _, t, _, _ in st)
    print(f"step {i}: {len(st)} kernels, {tot/1e3:.1f} us of kernel time")
    agg = OrderedDict()
    for n, t, g, b in st:
        a = agg.setdefault((n, g), [0, 0.0, 0.0]); a[0] += 1; a[1] += t; a[2] += b
    for (n, g), (c, t, b) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
        print(f"  {t/1e3:9.1f} us  {c:4d} x {t/c/1e3:7.2f} us  {b/t if t else 0:7.0f} GB/s  grid {g:>14s}  {n[:60]}")
