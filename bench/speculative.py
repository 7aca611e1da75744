#!/usr/bin/env python3
"""Speculative decoding benchmark: decode speed with and without speculation, acceptance rates.

Runs `elm run` (greedy, so every variant must print the same tokens) on ref-28m, plain and with
speculation, on three prompts:
  - repetitive: "The President said that the United States has been able to do with the same authority.
    The United States has been able to do with the same authority. The Government of the United
    States" (the prompt and transformers' greedy continuation from reference.json), which the model
    goes on repeating;
  - president: "The President said that" alone (the output turns repetitive after ~50 tokens);
  - heldout: 64 tokens of heldout.txt (ordinary text);
with prompt lookup (--lookup 3) and the ref-draft-14m draft model, adaptive and fixed draft lengths, whole
and scoring only the first 8,192 token ids (--draft-vocab 8192).
Runs are interleaved (rep 1 of every variant, then rep 2, ...) so load changes hit all alike; the
best of REPS is reported: decode tok/s, speedup over plain decoding of the same prompt, acceptance
rate, tokens per target pass, and whether the output equals plain decoding's. Also the CPU time of
decoding (the run's CPU time minus that of the same run stopped after the prompt), which load from
other processes distorts far less than wall time.

  bench/speculative.py [--build build] [--threads 2] [--reps 3] [-n 128] [-- extra elm run args]

GPU: pass the backend through, e.g. `bench/speculative.py --build build-cuda -- --backend cuda` (both
models run on the backend list given; speculation itself only uses Session).
Prompts are token ids (read from ../shared/models/ref-28m), so no tokenizer is needed.
"""
import argparse
import json
import os
import re
import resource
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("ELM_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
TARGET = os.path.join(SHARED, "models", "ref-28m")
DRAFT = os.path.join(SHARED, "models", "ref-draft-14m")


def heldout_ids(n):
    """The first n of the 512 held-out token ids stored in ref-28m's reference.safetensors."""
    with open(os.path.join(TARGET, "reference.safetensors"), "rb") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_len))
        begin, _ = header["input_ids"]["data_offsets"]
        f.seek(8 + header_len + begin)
        return list(struct.unpack("<%di" % n, f.read(4 * n)))


def president_ids(with_continuation):
    with open(os.path.join(TARGET, "reference.json")) as f:
        g = json.load(f)["greedy"][0]  # "The President said that"
    return g["prompt_ids"] + (g["greedy_ids"] if with_continuation else [])


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(args, prompt, extra, n=None):
    cmd = [os.path.join(args.build, "bin", "elm"), "run", "-m", TARGET, "--prompt-ids", ",".join(map(str, prompt)),
           "-n", str(args.n if n is None else n), "--temp", "0", "--ignore-eos", "-t", str(args.threads), "-v"]
    cmd += extra + args.rest
    cpu0 = children_cpu()
    out = subprocess.run(cmd, capture_output=True, text=True)
    cpu = children_cpu() - cpu0
    if out.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), out.stderr))
    gen = re.search(r"generated: (\d+) tokens, ([\d.]+) tok/s", out.stderr)
    spec = re.search(r"acceptance ([\d.]+)% \((\d+) of (\d+) drafted\), ([\d.]+) tokens per target pass", out.stderr)
    return {
        "tokens": out.stdout.split(),
        "tps": float(gen.group(2)),
        "cpu": cpu,
        "acceptance": float(spec.group(1)) if spec else None,
        "per_pass": float(spec.group(4)) if spec else 1.0,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("rest", nargs="*", help="extra elm run arguments (after --)")
    args = ap.parse_args()

    lookup = [
        ("lookup 3, adaptive (max 8)", ["--lookup", "3"]),
        ("lookup 3, fixed 4", ["--lookup", "3", "--draft-fixed", "--draft-max", "4"]),
        ("lookup 3, fixed 8", ["--lookup", "3", "--draft-fixed", "--draft-max", "8"]),
    ]
    draft = [
        ("draft 14m, adaptive (max 8)", ["--draft", DRAFT]),
        ("draft 14m, fixed 1", ["--draft", DRAFT, "--draft-fixed", "--draft-max", "1"]),
        ("draft 14m, fixed 3", ["--draft", DRAFT, "--draft-fixed", "--draft-max", "3"]),
        ("draft 14m, vocab 8192, adaptive", ["--draft", DRAFT, "--draft-vocab", "8192"]),
        ("draft 14m, vocab 8192, fixed 1", ["--draft", DRAFT, "--draft-vocab", "8192", "--draft-fixed", "--draft-max", "1"]),
        ("draft 14m, vocab 8192, fixed 3", ["--draft", DRAFT, "--draft-vocab", "8192", "--draft-fixed", "--draft-max", "3"]),
    ]
    cases = [("repetitive", president_ids(True), lookup + draft[:1]),
             ("president", president_ids(False), lookup[:2] + draft[:1]),
             ("heldout", heldout_ids(64), lookup[:1] + draft)]
    variants = [(name, prompt, label, extra) for name, prompt, vs in cases
                for label, extra in [("none", [])] + vs]
    results = {}
    with open("/proc/loadavg") as f:
        load0 = f.read().split()[0]
    for _ in range(args.reps):
        for name, prompt, label, extra in variants:
            r = run(args, prompt, extra)
            # CPU seconds of decoding: the run minus the same run stopped after the prompt (loading,
            # prefill, draft prefill). Load from other processes inflates wall time, much less this.
            r["cpu"] -= run(args, prompt, extra, n=0)["cpu"]
            results.setdefault((name, label), []).append(r)
    with open("/proc/loadavg") as f:
        load1 = f.read().split()[0]

    print("ref-28m, greedy, %d tokens, %d threads, best of %d, load average %s -> %s %s" % (
        args.n, args.threads, args.reps, load0, load1, " ".join(args.rest)))
    print("| prompt | speculation | decode tok/s | speedup | CPU ms/token | CPU speedup | acceptance | tokens/pass | same output |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, prompt, label, extra in variants:
        runs = results[(name, label)]
        best = max(runs, key=lambda r: r["tps"])
        plain = max(results[(name, "none")], key=lambda r: r["tps"])
        same = all(r["tokens"] == plain["tokens"] for r in runs)
        cpu = min(r["cpu"] for r in runs) * 1000 / args.n
        plain_cpu = min(r["cpu"] for r in results[(name, "none")]) * 1000 / args.n
        if label == "none":
            print("| %s | none | %.1f | 1.00x | %.1f | 1.00x | | 1.00 | |" % (name, best["tps"], cpu))
        else:
            print("| %s | %s | %.1f | %.2fx | %.1f | %.2fx | %.1f%% | %.2f | %s |" % (
                name, label, best["tps"], best["tps"] / plain["tps"], cpu, plain_cpu / cpu, best["acceptance"] or 0,
                best["per_pass"], "yes" if same else "NO"))


if __name__ == "__main__":
    main()
