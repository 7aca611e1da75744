#!/usr/bin/env python3
"""Speculative decoding in `elm serve`: aggregate decode speed with and without speculation.

Serves ref-28m (../shared/models/ref-28m) with `--parallel P` and sends four greedy completion requests
at once (the prompts of bench/speculative.py: the repetitive one, "The President said that", and two
64-token stretches of heldout.txt), N tokens each; with P = 1 they queue, with P = 4 they are batched
(every slot's pending token and drafts in one target pass). Per variant: aggregate tokens/s (all
completion tokens over the wall time of the four requests), speedup over plain serving with the same
P, the acceptance rate from the responses' timings (draft_n_accepted / draft_n), and whether every
text equals plain serving's. Best of REPS; variants interleaved so load changes hit all alike.

  bench/serve_speculative.py [--build build] [--threads 2] [--parallel 1,4] [-n 128] [--reps 2]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speculative import DRAFT, ROOT, TARGET, heldout_ids, president_ids  # noqa: E402

VARIANTS = [
    ("none", []),
    ("lookup 3", ["--lookup", "3"]),
    ("draft 14m, adaptive", ["--draft", DRAFT]),
    ("draft 14m, fixed 3", ["--draft", DRAFT, "--draft-max", "3", "--draft-fixed"]),
    ("draft 14m (ids < 8192), adaptive", ["--draft", DRAFT, "--draft-vocab", "8192"]),
    ("draft 14m (ids < 8192), fixed 1", ["--draft", DRAFT, "--draft-vocab", "8192", "--draft-max", "1", "--draft-fixed"]),
]


def prompts():
    held = heldout_ids(128 + 64)
    return [president_ids(True), president_ids(False), held[:64], held[128:192]]


def serve(args, parallel, extra, models):
    cmd = [os.path.join(args.build, "bin", "elm"), "serve", "--models", models, "--port", "0", "--parallel",
           str(parallel), "-t", str(args.threads), "-c", "1024", "--load", "ref-28m"] + extra
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    for _ in range(600):
        log.seek(0)
        m = re.search(r"http://[0-9.]+:[0-9]+", log.read())
        if m:
            return proc, m.group(0)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    log.seek(0)
    sys.exit("elm serve did not start: %s\n%s" % (" ".join(cmd), log.read()))


def complete(url, prompt, n, out, i):
    body = json.dumps({"model": "ref-28m", "prompt": prompt, "max_tokens": n, "temperature": 0}).encode()
    req = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        out[i] = json.load(r)


def measure(args, parallel, extra, models):
    proc, url = serve(args, parallel, extra, models)
    try:
        ps = prompts()
        out = [None] * len(ps)
        threads = [threading.Thread(target=complete, args=(url, p, args.n, out, i)) for i, p in enumerate(ps)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait()
    if any(o is None for o in out):
        sys.exit("a request failed")
    drafted = sum(o["timings"].get("draft_n", 0) for o in out)
    accepted = sum(o["timings"].get("draft_n_accepted", 0) for o in out)
    return {"tps": sum(o["usage"]["completion_tokens"] for o in out) / wall,
            "texts": [o["choices"][0]["text"] for o in out],
            "acceptance": 100.0 * accepted / drafted if drafted else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", default="1,4")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("-n", type=int, default=128)
    args = ap.parse_args()
    models = tempfile.mkdtemp()
    os.symlink(os.path.abspath(TARGET), os.path.join(models, "ref-28m"))
    results = {}
    for _ in range(args.reps):
        for p in [int(x) for x in args.parallel.split(",")]:
            for label, extra in VARIANTS:
                results.setdefault((p, label), []).append(measure(args, p, extra, models))
    print("ref-28m, 4 greedy requests of %d tokens, %d threads, best of %d" % (args.n, args.threads, args.reps))
    print("| --parallel | speculation | tokens/s | speedup | acceptance | same output |")
    print("|---|---|---|---|---|---|")
    for (p, label), runs in results.items():
        best = max(runs, key=lambda r: r["tps"])
        plain = max(results[(p, "none")], key=lambda r: r["tps"])
        same = all(r["texts"] == plain["texts"] for r in runs)
        acc = "%.1f%%" % best["acceptance"] if best["acceptance"] is not None else ""
        print("| %d | %s | %.1f | %.2fx | %s | %s |" % (p, label, best["tps"], best["tps"] / plain["tps"], acc,
                                                       "yes" if same else "NO"))


if __name__ == "__main__":
    main()
