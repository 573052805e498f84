#!/usr/bin/env python3
"""PyTorch eager peer of whetstone's `train-throughput` benchmark.

The Rust binary writes a *job* (JSON) and a *batch file*; this script rebuilds the same
architecture in plain `torch.nn` (same parameter names, shapes and count), replays the very
same padded batches with the same per-step sequence as whetstone's `Trainer`

    torch.manual_seed(step seed); zero_grad; forward (dropout on); cross-entropy;
    loss.item(); backward; clip_grad_norm_; set lr (warmup-linear); AdamW.step

for each training variant the job lists, and prints one JSON object on stdout. Before any
timing, each precision in `job["prime"]` runs forward and backward over every training batch
once, untimed (libtorch builds some kernels per input shape on first use). A variant is
`<impl>[@bf16]`: `<impl>` is the AdamW implementation (`default` = torch's CPU for-loop,
`foreach`, `fused`); `@bf16` runs forward and loss under `torch.autocast("cpu",
dtype=torch.bfloat16)` with the backward outside the context, as torch recommends (float32
parameters, gradients and optimiser state). `profile-<impl>[@bf16]` (`profile` alone =
`profile-default`) adds per-phase timing.

Inference (`job["infer"]`: a list of {part, precision, passes}) runs the model in eval mode
under `torch.no_grad()` (and the autocast context for bf16, one context per pass) over a part
of the batch file, as whetstone's `predict` does: forward, float32 logits, summed
cross-entropy `.item()`, softmax to numpy, arg-max.

Batch file: one line of JSON header terminated by "\n", then raw little-endian int64 data.
The header maps each part (`train`, then the inference parts, in the header's `parts` order)
to a list of batches [B, T]; the data holds, for each batch in that order, ids [B*T],
attention mask [B*T] and labels [B].

Usage:
    train_throughput.py --check            # prints {"torch": ..., "numpy": ...} or fails
    train_throughput.py --job job.json     # runs the job, prints results as JSON
"""

import argparse
import contextlib
import json
import math
import sys
import time


def check():
    try:
        import numpy
        import torch
    except ImportError as e:  # pragma: no cover - reported to the Rust side
        print(f"missing python package: {e}", file=sys.stderr)
        sys.exit(3)
    print(json.dumps({"torch": torch.__version__, "numpy": numpy.__version__,
                      "threads": torch.get_num_threads(), "python": sys.version.split()[0]}))


# --------------------------------------------------------------------------- models

def build_models():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class TextCnn(nn.Module):
        """whetstone_models::TextCnn: embedding x mask, Conv1d per window, ReLU,
        masked max over time, cat, dropout, Linear."""

        def __init__(self, vocab, labels, c):
            super().__init__()
            e, ch = c["embed_dim"], c["channels"]
            self.kernel_sizes = list(c["kernel_sizes"])
            self.dropout = c["dropout"]
            self.embedding = nn.Embedding(vocab, e)
            nn.init.uniform_(self.embedding.weight, -c["init_range"], c["init_range"])
            self.convs = nn.ModuleList([nn.Conv1d(e, ch, k) for k in self.kernel_sizes])
            self.classifier = nn.Linear(ch * len(self.kernel_sizes), labels)

        def forward(self, ids, mask):
            max_k = max(self.kernel_sizes)
            t = ids.shape[1]
            if t < max_k:
                ids = F.pad(ids, (0, max_k - t))
                mask = F.pad(mask, (0, max_k - t))
            m = mask.to(torch.float32)
            x = self.embedding(ids) * m.unsqueeze(-1)
            x = x.transpose(1, 2)
            lens = m.sum(1, dtype=torch.int64)
            pooled = []
            for conv, k in zip(self.convs, self.kernel_sizes):
                y = conv(x).relu()
                n = y.shape[2]
                valid_n = (lens - (k - 1)).clamp_min(1)
                pos = torch.arange(n, device=y.device).unsqueeze(0)
                invalid = (pos >= valid_n.unsqueeze(1)).unsqueeze(1)
                pooled.append(y.masked_fill(invalid, float("-inf")).amax(2))
            x = F.dropout(torch.cat(pooled, 1), self.dropout, self.training)
            return self.classifier(x)

    def bert_linear(i, o, std):
        lin = nn.Linear(i, o)
        nn.init.normal_(lin.weight, 0.0, std)
        nn.init.zeros_(lin.bias)
        return lin

    class Embeddings(nn.Module):
        def __init__(self, vocab, c):
            super().__init__()
            h, std = c["hidden"], c["init_std"]
            self.word_embeddings = nn.Embedding(vocab, h)
            self.position_embeddings = nn.Embedding(c["max_len"], h)
            self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], h)
            for emb in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings):
                nn.init.normal_(emb.weight, 0.0, std)
            self.LayerNorm = nn.LayerNorm(h, eps=c["layer_norm_eps"])
            self.dropout = c["dropout"]

        def forward(self, ids):
            t = ids.shape[1]
            pos = torch.arange(t, device=ids.device).unsqueeze(0)
            x = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(torch.zeros_like(ids))
            return F.dropout(self.LayerNorm(x), self.dropout, self.training)

    class SelfProj(nn.Module):
        def __init__(self, h, std):
            super().__init__()
            self.query = bert_linear(h, h, std)
            self.key = bert_linear(h, h, std)
            self.value = bert_linear(h, h, std)

    class Dense(nn.Module):
        def __init__(self, i, o, std, norm_eps=None):
            super().__init__()
            self.dense = bert_linear(i, o, std)
            if norm_eps is not None:
                self.LayerNorm = nn.LayerNorm(o, eps=norm_eps)

    class Attention(nn.Module):
        def __init__(self, c):
            super().__init__()
            h, std = c["hidden"], c["init_std"]
            self.add_module("self", SelfProj(h, std))
            self.output = Dense(h, h, std, c["layer_norm_eps"])
            self.heads = c["heads"]
            self.attention_dropout = c["attention_dropout"]

        def forward(self, x, keep):
            b, t, h = x.shape
            proj = self._modules["self"]

            def split(y):
                return y.view(b, t, self.heads, h // self.heads).transpose(1, 2)

            q, k, v = split(proj.query(x)), split(proj.key(x)), split(proj.value(x))
            p = self.attention_dropout if self.training else 0.0
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p, is_causal=False)
            return self.output.dense(ctx.transpose(1, 2).contiguous().view(b, t, h))

    class Layer(nn.Module):
        """Post-LN BERT block (whetstone_models::transformer::EncoderLayer, pre_norm = false)."""

        def __init__(self, c):
            super().__init__()
            h, f, std = c["hidden"], c["ffn"], c["init_std"]
            self.attention = Attention(c)
            self.intermediate = Dense(h, f, std)
            self.output = Dense(f, h, std, c["layer_norm_eps"])
            self.dropout = c["dropout"]

        def forward(self, x, keep):
            a = F.dropout(self.attention(x, keep), self.dropout, self.training)
            x = self.attention.output.LayerNorm(x + a)
            y = self.output.dense(F.gelu(self.intermediate.dense(x)))
            y = F.dropout(y, self.dropout, self.training)
            return self.output.LayerNorm(x + y)

    class Encoder(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.layer = nn.ModuleList([Layer(c) for _ in range(c["layers"])])

    class TransformerClassifier(nn.Module):
        def __init__(self, vocab, labels, c):
            super().__init__()
            if c.get("pre_norm"):
                raise SystemExit("peer: only the post-LN encoder is implemented")
            if c.get("pooling", "mean") != "mean":
                raise SystemExit("peer: only mean pooling is implemented")
            self.embeddings = Embeddings(vocab, c)
            self.encoder = Encoder(c)
            self.classifier = bert_linear(c["hidden"], labels, c["init_std"])
            self.dropout = c["dropout"]

        def forward(self, ids, mask):
            keep = (mask != 0).unsqueeze(1).unsqueeze(1)
            x = self.embeddings(ids)
            for layer in self.encoder.layer:
                x = layer(x, keep)
            m = mask.to(x.dtype).unsqueeze(-1)
            pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0)
            return self.classifier(F.dropout(pooled, self.dropout, self.training)).float()

    def build(kind, vocab, labels, cfg):
        if kind == "textcnn":
            return TextCnn(vocab, labels, cfg)
        if kind == "transformer":
            return TransformerClassifier(vocab, labels, cfg)
        raise SystemExit(f"peer: unknown model kind {kind!r}")

    return build


# --------------------------------------------------------------------------- data

def read_batches(path):
    import numpy as np
    import torch

    with open(path, "rb") as f:
        header = json.loads(f.readline())
        data = np.frombuffer(f.read(), dtype="<i8")
    pos = 0
    out = {}
    for part in header["parts"]:
        batches = []
        for b, t in header[part]:
            ids = torch.from_numpy(data[pos:pos + b * t].copy()).view(b, t)
            pos += b * t
            mask = torch.from_numpy(data[pos:pos + b * t].copy()).view(b, t)
            pos += b * t
            labels = torch.from_numpy(data[pos:pos + b].copy())
            pos += b
            batches.append((ids, mask, labels))
        out[part] = batches
    if pos != data.size:
        raise SystemExit(f"peer: batch file {path} has {data.size} values, header describes {pos}")
    return header, out


# --------------------------------------------------------------------------- run

def step_seed(seed, step):
    """whetstone_train's per-step seed (wrapping u64 arithmetic)."""
    m = (1 << 64) - 1
    return ((seed * 0x9E3779B97F4A7C15 & m) ^ (step * 0xD1B54A32D192ED03 & m)) & ((1 << 63) - 1)


def param_groups(model, weight_decay, no_decay):
    decay, plain = [], []
    for name, p in model.named_parameters():
        (plain if any(s in name for s in no_decay) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def parse_variant(variant):
    """`[profile-]<impl>[@bf16]` (or `profile[@bf16]`) -> (profile, impl, bf16)."""
    name, _, prec = variant.partition("@")
    if prec not in ("", "bf16"):
        raise SystemExit(f"peer: unknown precision in variant {variant!r}")
    profile = name == "profile" or name.startswith("profile-")
    impl = name[len("profile-"):] if name.startswith("profile-") else ("default" if name == "profile" else name)
    if impl not in ("default", "foreach", "fused"):
        raise SystemExit(f"peer: unknown optimizer variant {variant!r}")
    return profile, impl, prec == "bf16"


def run_job(job):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(job["threads"])
    build = build_models()
    header, batches = read_batches(job["batch_file"])
    train = batches["train"]
    warmup, steps = job["warmup"], job["steps"]
    if len(train) < max(warmup, steps):
        raise SystemExit(f"peer: {len(train)} training batches, need {max(warmup, steps)}")

    def fresh_model():
        torch.manual_seed(job["seed"])
        return build(job["kind"], job["vocab_size"], job["num_labels"], job["model"])

    model = fresh_model()
    params = [[n, list(p.shape)] for n, p in model.named_parameters()]
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "params": n_params, "param_shapes": params, "train": {}, "infer": None}

    def train_run(variant):
        model = fresh_model()
        model.train()
        # "<impl>[@bf16]": timed runs; "profile-<impl>[@bf16]": the same with per-phase timing.
        profile, impl, bf16 = parse_variant(variant)
        kw = {"foreach": {"foreach": True}, "fused": {"fused": True}, "default": {}}[impl]

        def amp():
            # A fresh context per step (leaving it clears autocast's weight-cast cache, as
            # whetstone's region per step does); fp32 runs have no context at all.
            return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

        opt = torch.optim.AdamW(param_groups(model, job["weight_decay"], job["no_decay"]),
                                lr=job["lr"], betas=(0.9, 0.999), eps=1e-8, **kw)
        plist = [p for p in model.parameters() if p.requires_grad]

        phases = {"zero_grad": 0.0, "forward+loss": 0.0, "backward": 0.0, "clip": 0.0, "optimizer": 0.0}
        clock = time.perf_counter

        def one_step(step, batch):
            ids, mask, labels = batch
            t0 = clock()
            torch.manual_seed(step_seed(job["seed"], step))
            opt.zero_grad()
            t1 = clock()
            with amp():
                logits = model(ids, mask)
                loss = F.cross_entropy(logits.float(), labels)
            lv = loss.item()
            t2 = clock()
            loss.backward()
            t3 = clock()
            if job["clip"] > 0:
                torch.nn.utils.clip_grad_norm_(plist, job["clip"])
            t4 = clock()
            for g in opt.param_groups:
                g["lr"] = job["lrs"][step]
            opt.step()
            if profile:
                t5 = clock()
                for k, a, b in (("zero_grad", t0, t1), ("forward+loss", t1, t2), ("backward", t2, t3),
                                ("clip", t3, t4), ("optimizer", t4, t5)):
                    phases[k] += b - a
            return lv

        for i in range(warmup):
            one_step(i, train[i])
        for k in phases:
            phases[k] = 0.0
        n = 0
        t0 = time.perf_counter()
        for i in range(steps):
            lv = one_step(i, train[i])
            n += train[i][2].shape[0]
        dt = time.perf_counter() - t0
        if not math.isfinite(lv):
            raise SystemExit(f"peer: non-finite loss {lv}")
        out = {"seq_per_s": n / dt, "seconds": dt, "examples": n, "steps": steps, "last_loss": lv}
        if profile:
            out["phases_ms_per_step"] = {k: 1e3 * v / steps for k, v in phases.items()}
        return out

    def prime(bf16):
        """Forward and backward over every training batch, untimed, on a throwaway model, so
        that libtorch's per-shape kernels (oneDNN convolution and bf16 matmul primitives)
        exist before anything is timed (whetstone's process does the same)."""
        model = fresh_model()
        model.train()
        ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
        for step, (ids, mask, labels) in enumerate(train):
            torch.manual_seed(step_seed(job["seed"], step))
            with ctx():
                loss = F.cross_entropy(model(ids, mask).float(), labels)
            loss.backward()
            model.zero_grad(set_to_none=True)

    for prec in job.get("prime", []):
        if prec not in ("fp32", "bf16"):
            raise SystemExit(f"peer: unknown precision {prec!r}")
        prime(prec == "bf16")

    for variant in job["variants"]:
        result["train"][variant] = train_run(variant)

    jobs = job.get("infer", [])
    if jobs:
        model = fresh_model()
        model.eval()
        result["infer"] = {}

        def one_pass(part, bf16):
            loss_sum, preds = 0.0, []
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with torch.no_grad(), ctx:
                for ids, mask, labels in batches[part]:
                    logits = model(ids, mask).float()
                    loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
                    p = logits.softmax(-1).numpy()
                    preds.extend(p.argmax(1).tolist())
            return len(preds)

        for ij in jobs:
            part, prec, passes = ij["part"], ij["precision"], ij["passes"]
            if prec not in ("fp32", "bf16"):
                raise SystemExit(f"peer: unknown precision {prec!r}")
            bf16 = prec == "bf16"
            one_pass(part, bf16)  # warm-up
            n = 0
            t0 = time.perf_counter()
            for _ in range(passes):
                n += one_pass(part, bf16)
            dt = time.perf_counter() - t0
            result["infer"][f"{part}@{prec}"] = {"seq_per_s": n / dt, "seconds": dt, "examples": n}
    print(json.dumps(result))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="print torch/numpy versions and exit")
    ap.add_argument("--job", help="job description (JSON) written by train-throughput")
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
