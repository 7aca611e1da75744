#!/usr/bin/env python3
"""Speculative decoding benchmark: decode speed with and without speculation, acceptance rates.

Runs `elm run` (greedy, so every variant must print the same tokens) on ref-28m with
  - prompt lookup (--lookup 3) on a repetitive prompt: "The President said that", whose continuation
    repeats itself ("...the United States has been able to do with the same authority. The United
    States has been able to do with the same authority...");
  - the ref-draft-14m draft model on that prompt and on held-out text (64 tokens of heldout.txt);
each with the adaptive draft length and with fixed lengths, and reports the best of REPS runs:
decode tok/s, speedup over plain decoding of the same prompt, acceptance rate, tokens per target pass.

  bench/speculative.py [--build build] [--threads 2] [--reps 3] [-n 128] [-- extra elm run args]

GPU: pass the backend through, e.g. `bench/speculative.py --build build-cuda -- --backend cuda` (both
models run on the backend list given; speculation itself only uses Session).
Prompts are token ids (read from ../shared/models/ref-28m), so no tokenizer is needed.
"""
import argparse
import json
import os
import re
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


def repetitive_ids():
    with open(os.path.join(TARGET, "reference.json")) as f:
        return json.load(f)["greedy"][0]["prompt_ids"]  # "The President said that"


def run(args, prompt, extra):
    cmd = [os.path.join(args.build, "bin", "elm"), "run", "-m", TARGET, "--prompt-ids", ",".join(map(str, prompt)),
           "-n", str(args.n), "--temp", "0", "--ignore-eos", "-t", str(args.threads), "-v"] + extra + args.rest
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), out.stderr))
    gen = re.search(r"generated: (\d+) tokens, ([\d.]+) tok/s", out.stderr)
    spec = re.search(r"acceptance ([\d.]+)% \((\d+) of (\d+) drafted\), ([\d.]+) tokens per target pass", out.stderr)
    return {
        "tokens": out.stdout.split(),
        "tps": float(gen.group(2)),
        "acceptance": float(spec.group(1)) if spec else None,
        "per_pass": float(spec.group(4)) if spec else 1.0,
    }


def best_of(args, prompt, extra):
    runs = [run(args, prompt, extra) for _ in range(args.reps)]
    best = max(runs, key=lambda r: r["tps"])
    best["same"] = all(r["tokens"] == runs[0]["tokens"] for r in runs)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("rest", nargs="*", help="extra elm run arguments (after --)")
    args = ap.parse_args()

    cases = [
        ("repetitive", repetitive_ids(), [
            ("lookup 3, adaptive (max 8)", ["--lookup", "3"]),
            ("lookup 3, fixed 4", ["--lookup", "3", "--draft-fixed", "--draft-max", "4"]),
            ("lookup 3, fixed 8", ["--lookup", "3", "--draft-fixed", "--draft-max", "8"]),
            ("draft 14m, adaptive (max 8)", ["--draft", DRAFT]),
            ("draft 14m, fixed 2", ["--draft", DRAFT, "--draft-fixed", "--draft-max", "2"]),
        ]),
        ("heldout", heldout_ids(64), [
            ("draft 14m, adaptive (max 8)", ["--draft", DRAFT]),
            ("draft 14m, fixed 1", ["--draft", DRAFT, "--draft-fixed", "--draft-max", "1"]),
            ("draft 14m, fixed 3", ["--draft", DRAFT, "--draft-fixed", "--draft-max", "3"]),
        ]),
    ]
    print("ref-28m, greedy, %d tokens, %d threads, best of %d %s" % (args.n, args.threads, args.reps, " ".join(args.rest)))
    print("| prompt | speculation | decode tok/s | speedup | acceptance | tokens/pass | same output |")
    print("|---|---|---|---|---|---|---|")
    for name, prompt, variants in cases:
        plain = best_of(args, prompt, [])
        print("| %s | none | %.1f | 1.00x | | 1.00 | |" % (name, plain["tps"]))
        for label, extra in variants:
            r = best_of(args, prompt, extra)
            same = r["same"] and r["tokens"] == plain["tokens"]
            print("| %s | %s | %.1f | %.2fx | %.1f%% | %.2f | %s |" % (
                name, label, r["tps"], r["tps"] / plain["tps"], r["acceptance"] or 0, r["per_pass"],
                "yes" if same else "NO"))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
