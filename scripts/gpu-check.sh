#!/usr/bin/env bash
# GPU check of mixed precision (issue 10): MiniLM-L6-sized fine-tuning for N steps in fp32,
# bf16 and fp16 on one CUDA device, seq/s, tokens/s and model FLOP utilisation against the
# GPU's bf16 peak, and the fp16 loss-scaling test (an injected overflow is skipped, the scale
# backs off and grows again, the scaler's state survives a resume).
#
# Two steps:
#   scripts/gpu-check.sh prepare   # here: build, strip and collect the binaries in target/gpu-check/
#   scripts/gpu-check.sh run       # on the GPU machine, from the repository root, with
#                                  # target/gpu-check carried there
#
# `run` needs python3 with torch 2.11 (for its lib folder; or set TORCH_LIB) and writes
# $OUT/gpu-check.md (default OUT=gpu-check-out). Environment: STEPS (timed steps, default 60),
# WARMUP (default 10), BATCH (default 32), PEAK_TFLOPS (bf16 dense peak, default 989 = H200 SXM),
# DEVICE (default cuda; `cpu` dry-runs the script here, where fp16 is refused by design).
set -euo pipefail

mode=${1:-}
dir=target/gpu-check

case "$mode" in
prepare)
    eval "$(cargo xtask env)"
    cargo build --release -p whetstone
    cargo test --release -p whetstone-train --test precision --no-run 2>&1 | tail -1
    test_bin=$(ls -t target/release/deps/precision-* | grep -v '\.d$' | head -1)
    cargo test --release -p whetstone-torch-ext --features c10d --test c10d --no-run 2>&1 | tail -1
    c10d_bin=$(ls -t target/release/deps/c10d-* | grep -v '\.d$' | head -1)
    mkdir -p "$dir"
    cp target/release/whetstone "$dir/whetstone"
    cp "$test_bin" "$dir/precision-test"
    cp "$c10d_bin" "$dir/c10d-test"
    strip "$dir/whetstone" "$dir/precision-test" "$dir/c10d-test"
    du -sh "$dir"/*
    echo "carry $dir to the GPU machine and run: scripts/gpu-check.sh run"
    ;;
run)
    out=${OUT:-gpu-check-out}
    steps=${STEPS:-60}
    warmup=${WARMUP:-10}
    batch=${BATCH:-32}
    peak=${PEAK_TFLOPS:-989}
    device=${DEVICE:-cuda}
    for f in "$dir/whetstone" "$dir/precision-test"; do
        [ -x "$f" ] || { echo "error: $f is missing: run 'scripts/gpu-check.sh prepare' first and carry $dir" >&2; exit 1; }
    done
    torch_lib=${TORCH_LIB:-$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')}
    export LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}"
    mkdir -p "$out"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" || true

    # Synthetic review-like sentences: the throughput of a MiniLM-sized encoder does not depend
    # on what the text says (the pretrained weights are too large to carry).
    python3 - "$out/data.csv" <<'PY'
import csv, random, sys
random.seed(0)
words = [w.strip() for w in "the a film movie plot actor scene story was is very not quite really good bad great awful dull lovely boring superb fine weak funny sad long short music camera ending script".split()]
with open(sys.argv[1], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["text", "label"])
    for i in range(6000):
        n = random.randint(8, 60)
        w.writerow([" ".join(random.choice(words) for _ in range(n)), i % 2])
PY
    cat > "$out/minilm-shape.toml" <<'TOML'
# all-MiniLM-L6-v2's shape (6 × 384, 12 heads, FFN 1536, vocabulary ~30k), random initialisation.
name = "gpu-minilm"
seed = 42
device = "DEVICE"
[data]
max_len = 64
[tokenizer]
vocab_size = 30522
min_frequency = 1
[model]
kind = "transformer"
layers = 6
hidden = 384
heads = 12
ffn = 1536
max_len = 64
pooling = "mean"
[optim]
kind = "adamw"
lr = 5e-5
weight_decay = 0.01
[schedule]
kind = "warmup-linear"
warmup_ratio = 0.1
[train]
epochs = 1
clip_norm = 1.0
log_every = 1
[eval]
latency_iters = 0
TOML
    sed -i "s/\"DEVICE\"/\"$device\"/" "$out/minilm-shape.toml"
    total=$((steps + warmup))
    for p in fp32 bf16 fp16; do
        echo "== $p: $total steps"
        "$dir/whetstone" train --recipe "$out/minilm-shape.toml" --data "$out/data.csv" --precision "$p" \
            --set "train.batch_size=$batch" --runs-dir "$out/runs" --name "minilm-$p" --stop-after "$total" --quiet \
            > "$out/train-$p.log" 2>&1 || { echo "error: the $p run failed:"; tail -5 "$out/train-$p.log"; }
    done

    echo "== NCCL smoke test (one-rank NCCL process group on cuda:0, issue 13)"
    "$dir/c10d-test" nccl_smoke_on_one_gpu --nocapture > "$out/nccl-smoke.log" 2>&1 && grep -h "nccl_smoke" "$out/nccl-smoke.log" || { echo "NCCL smoke test FAILED:"; tail -20 "$out/nccl-smoke.log"; }

    echo "== fp16 loss scaling with an injected overflow (precision test on CUDA)"
    scaler_status=passed
    WHETSTONE_TEST_DEVICE=$device "$dir/precision-test" --test-threads=1 > "$out/scaler-test.log" 2>&1 || scaler_status=FAILED

    python3 - "$out" "$warmup" "$total" "$batch" "$peak" "$scaler_status" <<'PY'
import json, os, sys
out, warmup, total, batch, peak, scaler = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
L, d, ffn, T = 6, 384, 1536, 64
n_matmul = L * (4 * d * d + 2 * d * ffn)           # parameters in the encoder's matmuls
flops_per_seq = 6 * n_matmul * T + 12 * L * d * T * T  # training: forward + backward, attention included
rows = []
for p in ["fp32", "bf16", "fp16"]:
    path = os.path.join(out, "runs", f"minilm-{p}", "metrics.jsonl")
    recs = []
    if os.path.exists(path):
        recs = [json.loads(l) for l in open(path) if l.strip()]
    recs = [r for r in recs if r.get("split") == "train" and "seq_per_s" in r]
    by = {r["step"]: r["seq_per_s"] for r in recs}
    if warmup not in by or total not in by:
        rows.append(f"| {p} | failed (see train-{p}.log) | | | |")
        continue
    # The log's seq/s is cumulative: time(n) = n·B / s(n); the timed window is warmup..total.
    t = lambda n: n * batch / by[n]
    sps = (total - warmup) * batch / (t(total) - t(warmup))
    mfu = sps * flops_per_seq / (peak * 1e12)
    scale = [r.get("loss_scale") for r in recs if r.get("loss_scale") is not None]
    note = f"loss scale {scale[0]:g} → {scale[-1]:g}" if scale else ""
    rows.append(f"| {p} | {sps:.0f} | {sps * T:.0f} | {100 * mfu:.2f}% | {note} |")
gpu = open(os.path.join(out, "gpu.txt")).read().strip() if os.path.exists(os.path.join(out, "gpu.txt")) else "?"
md = [f"# GPU check: {gpu}", "",
      f"MiniLM-L6 shape (random init), batch {batch} × {T} tokens, AdamW, {total - warmup} timed steps after {warmup} warm-up steps.",
      f"MFU: {flops_per_seq / 1e9:.2f} GFLOP per sequence (6·N·T + 12·L·d·T², padded tokens) against a {peak:g} TFLOP/s bf16 dense peak.", "",
      "| precision | seq/s | tokens/s (padded) | MFU | |", "|---|---:|---:|---:|---|", *rows, "",
      f"fp16 loss scaling with an injected overflow (whetstone-train's precision tests on CUDA): **{scaler}** (scaler-test.log)."]
open(os.path.join(out, "gpu-check.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
    ;;
*)
    echo "usage: scripts/gpu-check.sh prepare|run" >&2
    exit 2
    ;;
esac
