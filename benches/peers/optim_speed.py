#!/usr/bin/env python3
"""PyTorch peer of whetstone's `optim-speed` benchmark: the time of one torch.optim step.

The Rust binary (`benches/src/bin/optim-speed.rs`) writes a *job* (JSON) naming the parameter
shapes, the optimisers and the implementations to time; this script builds float32 CPU
parameters with fixed random gradients (the optimisers never write to `.grad`, so every step
sees the same values), and for each (optimiser, implementation) times `opt.step()` alone:
`warmup` untimed steps, then `iters` timed ones, each with `time.perf_counter()`.

Optimisers, matching the whetstone side:
    adamw  AdamW(lr, betas=(0.9, 0.999), eps=1e-8), weight_decay on two groups: `weight_decay`
           except names containing a `no_decay` pattern (bias / LayerNorm)
    adam   Adam(lr), no weight decay
    sgd    SGD(lr, momentum=0.9), no weight decay
Implementations: `forloop` (foreach=False), `foreach` (foreach=True), `fused` (fused=True).
(whetstone's `kernel = "torch-fused"` rows call the same libtorch kernels as `fused` from Rust,
so `fused` against them separates the kernel from the Python-side overhead around it.)

Usage:
    optim_speed.py --check            # prints {"torch": ..., "python": ...} or fails
    optim_speed.py --job job.json     # runs the job, prints the per-step times (ms) as JSON
"""

import argparse
import json
import sys
import time


def check():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - reported to the Rust side
        print(f"missing python package: {e}", file=sys.stderr)
        sys.exit(3)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "python": sys.version.split()[0]}))


def make_optimizer(torch, name, impl, params, names, job):
    kw = {"forloop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[impl]
    lr = job["lr"]
    if name == "adamw":
        decay = [p for n, p in zip(names, params) if not any(s in n for s in job["no_decay"])]
        plain = [p for n, p in zip(names, params) if any(s in n for s in job["no_decay"])]
        groups = [g for g in ({"params": decay, "weight_decay": job["weight_decay"]},
                              {"params": plain, "weight_decay": 0.0}) if g["params"]]
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, **kw)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **kw)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=0.0, **kw)
    raise SystemExit(f"peer: unknown optimizer {name!r}")


def run_job(job):
    import torch

    torch.set_num_threads(job["threads"])
    names = [n for n, _ in job["shapes"]]
    shapes = [tuple(s) for _, s in job["shapes"]]
    clock = time.perf_counter
    results = {}
    for name in job["optimizers"]:
        for impl in job["impls"]:
            torch.manual_seed(job["seed"])
            with torch.no_grad():
                params = [torch.nn.Parameter(torch.randn(s) * 0.02) for s in shapes]
                for p in params:
                    p.grad = torch.randn_like(p)
            opt = make_optimizer(torch, name, impl, params, names, job)
            for _ in range(job["warmup"]):
                opt.step()
            ts = []
            for _ in range(job["iters"]):
                t0 = clock()
                opt.step()
                ts.append((clock() - t0) * 1e3)
            results.setdefault(name, {})[impl] = ts
            del opt, params
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "params": sum(int(torch.Size(s).numel()) for s in shapes), "ms": results}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="print the torch version and exit")
    ap.add_argument("--job", help="job description (JSON) written by optim-speed")
    a = ap.parse_args()
    if a.check:
        check()
        return
    if not a.job:
        ap.error("--job or --check is required")
    with open(a.job) as f:
        job = json.load(f)
    run_job(job)


if __name__ == "__main__":
    main()
