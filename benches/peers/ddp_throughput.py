#!/usr/bin/env python3
"""PyTorch DistributedDataParallel (Gloo) peer of whetstone's `dist-throughput` benchmark.

The Rust binary writes a *job* (JSON) and a *batch file* in the format of the
`train-throughput` peer (`train_throughput.py`, whose model definitions, batch reader, step
seed and AdamW parameter groups this script imports, so both peers build the same
architectures and read the same batches). The job's `mode` says what to run:

- `single`: one process, `job["threads"]` intra-op threads (2), a plain `torch.nn` model (no
  DDP) on every *global* batch: the reference the data-parallel runs are compared with.
- `ddp`: `job["world"]` worker processes (2), which this script starts itself as `torchrun`
  would (environment RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1, MASTER_PORT=<a free
  port>), each with `torch.set_num_threads(1)`, `dist.init_process_group("gloo")` and the model
  wrapped in `torch.nn.parallel.DistributedDataParallel` (default `bucket_cap_mb=25`). Global
  batch g of n rows is split into contiguous shares: with base = n // W and extra = n % W,
  rank r takes `base + (r < extra)` rows starting at `r * base + min(r, extra)`, padded to
  the share's own longest row (as whetstone's `ShardedSource` builds it).

Per step, on each process, the same sequence as whetstone's `Trainer::train_step` and the
`train_throughput.py` peer:

    torch.manual_seed(step seed); zero_grad; forward (dropout on); cross-entropy;
    loss.item(); backward (DDP: gradient all-reduce in its hooks, bucketed and overlapped
    with the backward); clip_grad_norm_; set lr (warmup-linear); AdamW.step

for each AdamW implementation in `job["variants"]` (`default`, `foreach`, `fused`), each from a
fresh, seeded model. Before any timing, every process runs forward and backward over each
batch (its share, for DDP ranks) once, untimed, on a throwaway plain model (libtorch builds
some kernels per input shape on first use). `warmup` untimed steps, then `steps` timed steps
(DDP: after a barrier). DDP's own runtime logging (`_set_ddp_runtime_logging_sample_rate(1)`,
read after every timed step, outside the timed spans) gives, per step, the backward's compute
time, the span of the gradient all-reduce (first bucket launched to last bucket done) and how
much of that span overlapped the backward; bytes per step are DDP's bucket sizes (the gradient
payload each rank all-reduces). After the timed runs, rank 0 probes Gloo itself: the median
time of a 4-byte all-reduce (latency) and of a 16 MiB one (bandwidth).

Prints one JSON object on stdout (the DDP parent prints rank 0's, with every rank's timing).

Usage:
    ddp_throughput.py --check          # prints {"torch": ..., "gloo": true, ...} or fails
    ddp_throughput.py --job job.json   # runs the job, prints results as JSON
"""

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_throughput as tt  # noqa: E402  (the same models, batch reader, seeds, groups)


def check():
    try:
        import numpy
        import torch
        import torch.distributed as dist
    except ImportError as e:  # pragma: no cover - reported to the Rust side
        print(f"missing python package: {e}", file=sys.stderr)
        sys.exit(3)
    if not (dist.is_available() and dist.is_gloo_available()):
        print("this torch has no torch.distributed with Gloo", file=sys.stderr)
        sys.exit(3)
    print(json.dumps({"torch": torch.__version__, "numpy": numpy.__version__, "gloo": True,
                      "threads": torch.get_num_threads(), "python": sys.version.split()[0]}))


def share(n, rank, world):
    """Rows [start, start + count) of a global batch of n rows that `rank` takes."""
    base, extra = divmod(n, world)
    return rank * base + min(rank, extra), base + (1 if rank < extra else 0)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_worker(job, rank, world):
    """One process's part: `single` (rank 0 of a world of 1) or a DDP rank."""
    import torch
    import torch.nn.functional as F

    ddp = job["mode"] == "ddp"
    torch.set_num_threads(1 if ddp else job["threads"])
    if ddp:
        import torch.distributed as dist
        dist.init_process_group("gloo")
        assert dist.get_rank() == rank and dist.get_world_size() == world
    build = tt.build_models()
    _, parts = tt.read_batches(job["batch_file"])
    warmup, steps = job["warmup"], job["steps"]
    train_all = parts["train"]
    if len(train_all) < max(warmup, steps):
        raise SystemExit(f"peer: {len(train_all)} training batches, need {max(warmup, steps)}")
    # This process's share of each global batch (all of it for `single`).
    train = []
    for ids, mask, labels in train_all:
        start, count = share(labels.shape[0], rank, world)
        if count == 0:
            raise SystemExit(f"peer: a global batch of {labels.shape[0]} rows leaves rank {rank} nothing")
        # Padded to the share's own longest row, as whetstone's `ShardedSource` (and a
        # per-rank DataLoader's collate) builds it; `single` keeps the global batch as is.
        m = mask[start:start + count]
        t = int(m.sum(1).max())
        train.append((ids[start:start + count, :t].contiguous(), m[:, :t].contiguous(),
                      labels[start:start + count].contiguous()))
    global_rows = [b[2].shape[0] for b in train_all]

    def fresh_model():
        torch.manual_seed(job["seed"])
        return build(job["kind"], job["vocab_size"], job["num_labels"], job["model"])

    # Prime: every batch shape once, forward and backward, untimed, on a throwaway model.
    m = fresh_model()
    m.train()
    for step, (ids, mask, labels) in enumerate(train[:max(warmup, steps)]):
        torch.manual_seed(tt.step_seed(job["seed"], step))
        F.cross_entropy(m(ids, mask).float(), labels).backward()
        m.zero_grad(set_to_none=True)
    del m

    n_params = sum(p.numel() for p in fresh_model().parameters() if p.requires_grad)
    result = {"mode": job["mode"], "rank": rank, "world": world, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "params": n_params, "train": {}}

    def train_run(impl):
        kw = {"foreach": {"foreach": True}, "fused": {"fused": True}, "default": {}}[impl]
        base = fresh_model()
        base.train()
        if ddp:
            model = torch.nn.parallel.DistributedDataParallel(base, bucket_cap_mb=job.get("bucket_cap_mb", 25))
            model._set_ddp_runtime_logging_sample_rate(1)
        else:
            model = base
        opt = torch.optim.AdamW(tt.param_groups(base, job["weight_decay"], job["no_decay"]),
                                lr=job["lr"], betas=(0.9, 0.999), eps=1e-8, **kw)
        plist = [p for p in base.parameters() if p.requires_grad]

        def one_step(step, batch):
            ids, mask, labels = batch
            torch.manual_seed(tt.step_seed(job["seed"], step))
            opt.zero_grad()
            logits = model(ids, mask)
            loss = F.cross_entropy(logits.float(), labels)
            lv = loss.item()
            loss.backward()
            if job["clip"] > 0:
                torch.nn.utils.clip_grad_norm_(plist, job["clip"])
            for g in opt.param_groups:
                g["lr"] = job["lrs"][step]
            opt.step()
            return lv

        for i in range(warmup):
            one_step(i, train[i])
        if ddp:
            dist.barrier()
        comm, exposed, bwd = [], [], []
        wall = 0.0
        rows = 0
        clock = time.perf_counter
        t_first = clock()
        for i in range(steps):
            t0 = clock()
            lv = one_step(i, train[i])
            wall += clock() - t0
            rows += global_rows[i]
            if ddp:
                # DDP's runtime stats of the *previous* iteration are recorded at the start of
                # each forward, so after step i they describe step i - 1 (skip the warm-up's).
                if i >= 1:
                    d = model._get_ddp_logging_data()
                    c, o = d.get("backward_comm_time", 0), d.get("backward_compute_comm_overlap_time", 0)
                    comm.append(c / 1e9)
                    exposed.append(max(c - o, 0) / 1e9)
                    bwd.append(d.get("backward_compute_time", 0) / 1e9)
        span = clock() - t_first
        if not math.isfinite(lv):
            raise SystemExit(f"peer: non-finite loss {lv}")
        out = {"seq_per_s": rows / wall, "ms_per_step": 1e3 * wall / steps, "seconds": wall, "span_seconds": span,
               "examples": rows, "local_examples": sum(b[2].shape[0] for b in train[:steps]), "steps": steps,
               "last_loss": lv}
        if ddp:
            d = model._get_ddp_logging_data()
            sizes = [int(x) for x in str(d.get("rebuilt_bucket_sizes") or d.get("bucket_sizes", "")).replace(",", " ").split() if x]
            out.update({
                "allreduce_ms_per_step": 1e3 * statistics.fmean(comm) if comm else None,
                "allreduce_exposed_ms_per_step": 1e3 * statistics.fmean(exposed) if exposed else None,
                "backward_compute_ms_per_step": 1e3 * statistics.fmean(bwd) if bwd else None,
                "stat_steps": len(comm),
                "bytes_per_step": sum(sizes),
                "buckets": len(sizes),
                "bucket_cap_bytes": int(d.get("bucket_cap_bytes", 0)),
                "total_parameter_size_bytes": int(d.get("total_parameter_size_bytes", 0)),
            })
            dist.barrier()
        return out

    for impl in job["variants"]:
        if impl not in ("default", "foreach", "fused"):
            raise SystemExit(f"peer: unknown AdamW implementation {impl!r}")
        result["train"][impl] = train_run(impl)

    if ddp:
        if job.get("probe", True):
            result["probe"] = probe(dist, torch, job.get("probe_reps", 200))
        # Every rank is done with every collective before any leaves (the caller then exits
        # without tearing c10d down: see main).
        dist.barrier()
    return result


def probe(dist, torch, reps):
    """Median all-reduce time of 4 bytes (latency) and of 16 MiB (bandwidth), Gloo, sum."""
    out = {}
    for name, numel, n in (("small", 1, reps), ("large", 4 << 20, max(reps // 20, 5))):
        t = torch.zeros(numel)
        for _ in range(3):
            dist.all_reduce(t)
        times = []
        for _ in range(n):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(t)
            times.append(time.perf_counter() - t0)
        out[name] = {"bytes": numel * 4, "median_s": statistics.median(times), "min_s": min(times), "reps": n}
    return out


def run_ddp(job, job_path):
    """Start `world` ranks of this script as torchrun would and gather their results."""
    world = job["world"]
    env_base = dict(os.environ)
    env_base.update({"WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
                     "OMP_NUM_THREADS": "1"})
    import tempfile
    tmp = tempfile.TemporaryDirectory(prefix="ddp-peer-")
    procs, files = [], []
    for r in range(world):
        env = dict(env_base, RANK=str(r), LOCAL_RANK=str(r), LOCAL_WORLD_SIZE=str(world))
        so = open(os.path.join(tmp.name, f"rank{r}.out"), "w+")
        se = open(os.path.join(tmp.name, f"rank{r}.err"), "w+")
        files.append((so, se))
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--job", job_path, "--worker"],
                                      env=env, stdout=so, stderr=se, text=True))
    timeout = job.get("timeout_s", 1800)
    t0 = time.monotonic()

    def stop_all():
        for q in procs:
            if q.poll() is None:
                q.kill()
                q.wait()

    def err(r):
        files[r][1].seek(0)
        return files[r][1].read().strip()

    # Poll: a rank that fails takes the others down at once (they would wait in a collective).
    while any(p.poll() is None for p in procs):
        bad = [r for r, p in enumerate(procs) if p.poll() not in (None, 0)]
        if bad:
            stop_all()
            raise SystemExit("peer: " + "\n".join(f"DDP rank {r} exited with {procs[r].returncode}:\n{err(r)}" for r in bad))
        if time.monotonic() - t0 > timeout:
            stop_all()
            raise SystemExit(f"peer: the DDP ranks did not finish within {timeout}s")
        time.sleep(0.1)
    bad = [r for r, p in enumerate(procs) if p.returncode != 0]
    if bad:
        raise SystemExit("peer: " + "\n".join(f"DDP rank {r} exited with {procs[r].returncode}:\n{err(r)}" for r in bad))
    outs = []
    for so, _ in files:
        so.seek(0)
        outs.append(so.read())
    ranks = []
    for r, so in enumerate(outs):
        line = next((l for l in reversed(so.splitlines()) if l.startswith("{")), None)
        if line is None:
            raise SystemExit(f"peer: DDP rank {r} printed no JSON")
        ranks.append(json.loads(line))
    result = ranks[0]
    # Step time of the data-parallel job: the slowest rank's (they wait for each other in
    # every all-reduce, so they differ by at most part of a step).
    for impl, t in result["train"].items():
        per_rank = [dict(rk["train"][impl]) for rk in ranks]
        worst = max(per_rank, key=lambda x: x["seconds"])
        t["rank0_seq_per_s"], t["rank0_ms_per_step"] = t["seq_per_s"], t["ms_per_step"]
        t["seq_per_s"], t["ms_per_step"], t["seconds"] = worst["seq_per_s"], worst["ms_per_step"], worst["seconds"]
        t["per_rank"] = [{k: x.get(k) for k in ("seconds", "ms_per_step", "local_examples", "allreduce_ms_per_step",
                                                "allreduce_exposed_ms_per_step", "backward_compute_ms_per_step")}
                         for x in per_rank]
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="print torch/numpy versions and exit")
    ap.add_argument("--job", help="job description (JSON) written by dist-throughput")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.check:
        check()
        return
    if not a.job:
        ap.error("--job or --check is required")
    with open(a.job) as f:
        job = json.load(f)
    if job["mode"] == "single":
        print(json.dumps(run_worker(job, 0, 1)))
    elif job["mode"] != "ddp":
        raise SystemExit(f"peer: unknown mode {job['mode']!r}")
    elif a.worker:
        print(json.dumps(run_worker(job, int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))))
        sys.stdout.flush()
        sys.stderr.flush()
        # Leave at once: tearing down the Gloo process group and the TCPStore at interpreter exit
        # occasionally aborts ("terminate called without an active exception") after the
        # results are out; the ranks met at a final barrier, nothing is in flight.
        os._exit(0)
    else:
        print(json.dumps(run_ddp(job, a.job)))


if __name__ == "__main__":
    main()
