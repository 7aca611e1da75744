#!/usr/bin/env python3
"""Figures and a table from elm-model-bench JSON lines (bench/cuda/run_h100.sh), against llama.cpp CUDA
on the same H100 and the same random-weight models (../shared/peers.md, GPU table).
  plot.py bench.jsonl OUTDIR"""
import json, os, sys

# llama-bench -ngl 99 -p 512 -n 128 -r 5 (peers.md): (model, llama.cpp type) -> (pp512, tg128, file MiB)
LLAMA_CPP = {("llama3.2-1b", "Q4_0"): (36000, 911, 728), ("llama3.2-1b", "Q8_0"): (43000, 784, 1252),
             ("smollm2-1.7b", "Q4_0"): (24000, 705, 943), ("smollm2-1.7b", "Q8_0"): (30000, 573, 1734)}
PEER = {"int4": "Q4_0", "int4-g32": "Q4_0", "int8": "Q8_0"}
HBM = 3.0e12  # bytes/s, device-to-device copy measured on this H100 (KINDS.md)

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
out = sys.argv[2]
lines = ["| model | elm quant | weights MiB | pp512 tok/s | llama.cpp pp512 | tg128 tok/s | llama.cpp tg128 | "
         "tg ratio | HBM roofline fraction | GPU MiB (elm allocations) |", "|" + "---|" * 10]
for r in rows:
    peer = LLAMA_CPP.get((r["model"], PEER.get(r["quant"], "")), (0, 0, 0))
    roof = r["tg_tps"] * r["weight_bytes"] / HBM
    lines.append(f"| {r['model']} | {r['quant']} | {r['weight_bytes']/2**20:.0f} | {r['pp_tps']:.0f} | {peer[0]} | "
                 f"{r['tg_tps']:.0f} | {peer[1]} | {r['tg_tps']/peer[1] if peer[1] else 0:.2f} | {roof:.2f} | "
                 f"{r['gpu_mem_elm']/2**20:.0f} |")
open(os.path.join(out, "bench.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit(0)
labels = [f"{r['model']}\n{r['quant']}" for r in rows]
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
for ax, key, idx, title in ((axes[0], "tg_tps", 1, "decode tg128 (tok/s)"), (axes[1], "pp_tps", 0, "prefill pp512 (tok/s)")):
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r[key] for r in rows], 0.4, label="elm CUDA")
    ax.bar([x + 0.2 for x in xs], [LLAMA_CPP.get((r["model"], PEER.get(r["quant"], "")), (0, 0, 0))[idx] for r in rows],
           0.4, label="llama.cpp CUDA (Q4_0 / Q8_0)")
    ax.set_xticks(list(xs)); ax.set_xticklabels(labels, fontsize=8); ax.set_title(title + ", H100"); ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(out, "bench.png"), dpi=110)
