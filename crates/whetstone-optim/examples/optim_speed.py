"""torch.optim step time on the shapes of examples/optim_speed.rs (float32, CPU).
Usage: python optim_speed.py [threads] [iters]"""
import sys
import time

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 20
torch.set_num_threads(threads)


def minilm():
    v = [(30522, 384), (512, 384), (2, 384), (384,), (384,)]
    for _ in range(6):
        for _ in range(4):
            v += [(384, 384), (384,)]
        v += [(1536, 384), (1536,), (384, 1536), (384,), (384,), (384,), (384,), (384,)]
    return v


def small():
    return [(50, 100) if i % 2 == 0 else (5000,) for i in range(200)]


def bench(label, shapes, make):
    ps = [torch.nn.Parameter(torch.randn(s) * 0.02) for s in shapes]
    for p in ps:
        p.grad = torch.randn_like(p)
    opt = make(ps)
    for _ in range(3):
        opt.step()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        opt.step()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    n = sum(p.numel() for p in ps)
    print(f"{label:<40} {n:>9} params  median {ts[len(ts)//2]:8.3f} ms  min {ts[0]:8.3f} ms")


print(f"threads = {threads}, torch {torch.__version__}")
for name, shapes in [("minilm", minilm()), ("200x5k", small())]:
    for impl in ["forloop", "foreach", "fused"]:
        kw = {"foreach": False} if impl == "forloop" else {"foreach": True} if impl == "foreach" else {"fused": True}
        bench(f"{name} AdamW {impl}", shapes, lambda ps: torch.optim.AdamW(ps, lr=1e-4, weight_decay=0.01, **kw))
        bench(f"{name} Adam {impl}", shapes, lambda ps: torch.optim.Adam(ps, lr=1e-4, **kw))
        bench(f"{name} SGD(m=0.9) {impl}", shapes, lambda ps: torch.optim.SGD(ps, lr=1e-4, momentum=0.9, **kw))
