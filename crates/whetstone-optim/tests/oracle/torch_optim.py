"""Oracle for whetstone-optim's exactness tests.

Usage: torch_optim.py DIR. Reads DIR/cases.json, DIR/params.bin and DIR/grads.bin (raw
little-endian float64), runs every case for `steps` steps and writes DIR/<case id>.bin: the
concatenated parameters after every step (float64, steps x total). Everything runs in float64.

torch.optim classes are run with foreach=False (the single-tensor reference path). Algorithms
torch does not have (Lion, LAMB, AdaBelief, Adafactor, Schedule-Free AdamW) are small reference
implementations below, written from the papers and the authors' official code (cited per class).
"""
import json
import math
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)


class Lion(torch.optim.Optimizer):
    """Chen et al. 2023, Algorithm 2; as google/automl lion_pytorch.py."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                g = p.grad
                st = self.state[p]
                if "exp_avg" not in st:
                    st["exp_avg"] = torch.zeros_like(p)
                m = st["exp_avg"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                update = (m * b1 + g * (1 - b1)).sign_()
                p.add_(update, alpha=-group["lr"])
                m.mul_(b2).add_(g, alpha=1 - b2)


class Lamb(torch.optim.Optimizer):
    """You et al. 2020, Algorithm 2 (bias-corrected Adam ratio, decoupled decay inside the
    ratio, trust ratio ||w|| / ||r||, 1 when either is 0), as timm's Lamb with always_adapt."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                g = p.grad
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["m"] = torch.zeros_like(p)
                    st["v"] = torch.zeros_like(p)
                st["step"] += 1
                t = st["step"]
                st["m"].mul_(b1).add_(g, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                m_hat = st["m"] / (1 - b1 ** t)
                v_hat = st["v"] / (1 - b2 ** t)
                r = m_hat / (v_hat.sqrt() + group["eps"]) + group["weight_decay"] * p
                wn, rn = p.norm().item(), r.norm().item()
                ratio = wn / rn if wn > 0 and rn > 0 else 1.0
                p.add_(r, alpha=-group["lr"] * ratio)


class AdaBelief(torch.optim.Optimizer):
    """Zhuang et al. 2020; official adabelief-pytorch 0.2.0 step with rectify=False,
    amsgrad=False, weight_decouple=True, fixed_decay=False."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                grad = p.grad
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_var"] = torch.zeros_like(p)
                st["step"] += 1
                p.mul_(1.0 - group["lr"] * group["weight_decay"])
                bc1 = 1 - b1 ** st["step"]
                bc2 = 1 - b2 ** st["step"]
                m, s = st["exp_avg"], st["exp_avg_var"]
                m.mul_(b1).add_(grad, alpha=1 - b1)
                r = grad - m
                s.mul_(b2).addcmul_(r, r, value=1 - b2)
                denom = (s.add_(group["eps"]).sqrt() / math.sqrt(bc2)).add_(group["eps"])
                p.addcdiv_(m, denom, value=-group["lr"] / bc1)


class Adafactor(torch.optim.Optimizer):
    """Shazeer & Stern 2018; the step of transformers.optimization.Adafactor (fairseq's)."""

    def __init__(self, params, lr=None, eps=(1e-30, 1e-3), clip_threshold=1.0, decay_rate=-0.8,
                 beta1=None, weight_decay=0.0, scale_parameter=True, relative_step=False, warmup_init=False):
        super().__init__(params, dict(lr=lr, eps=eps, clip_threshold=clip_threshold, decay_rate=decay_rate,
                                      beta1=beta1, weight_decay=weight_decay, scale_parameter=scale_parameter,
                                      relative_step=relative_step, warmup_init=warmup_init))

    @staticmethod
    def _rms(t):
        return t.norm(2) / (t.numel() ** 0.5)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                st = self.state[p]
                shape = grad.shape
                factored = len(shape) >= 2
                if not st:
                    st["step"] = 0
                    if group["beta1"] is not None:
                        st["exp_avg"] = torch.zeros_like(grad)
                    if factored:
                        st["row"] = torch.zeros(shape[:-1])
                        st["col"] = torch.zeros(shape[:-2] + shape[-1:])
                    else:
                        st["v"] = torch.zeros_like(grad)
                st["step"] += 1
                t = st["step"]
                rel = group["lr"]
                if group["relative_step"]:
                    min_step = 1e-6 * t if group["warmup_init"] else 1e-2
                    rel = min(min_step, 1.0 / math.sqrt(t))
                scale = max(group["eps"][1], self._rms(p)) if group["scale_parameter"] else 1.0
                lr = scale * rel
                beta2t = 1.0 - math.pow(t, group["decay_rate"])
                update = grad ** 2 + group["eps"][0]
                if factored:
                    st["row"].mul_(beta2t).add_(update.mean(dim=-1), alpha=1.0 - beta2t)
                    st["col"].mul_(beta2t).add_(update.mean(dim=-2), alpha=1.0 - beta2t)
                    r = (st["row"] / st["row"].mean(dim=-1, keepdim=True)).rsqrt_().unsqueeze(-1)
                    c = st["col"].unsqueeze(-2).rsqrt()
                    update = torch.mul(r, c).mul_(grad)
                else:
                    st["v"].mul_(beta2t).add_(update, alpha=1.0 - beta2t)
                    update = st["v"].rsqrt().mul(grad)
                update.div_((self._rms(update) / group["clip_threshold"]).clamp_(min=1.0))
                update.mul_(lr)
                if group["beta1"] is not None:
                    st["exp_avg"].mul_(group["beta1"]).add_(update, alpha=1 - group["beta1"])
                    update = st["exp_avg"]
                if group["weight_decay"] != 0:
                    p.add_(p, alpha=(-group["weight_decay"] * lr))
                p.add_(-update)


class ScheduleFreeAdamW(torch.optim.Optimizer):
    """Defazio et al. 2024; facebookresearch/schedule_free adamw_schedulefree_reference.py
    (train mode: the parameters hold y)."""

    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 warmup_steps=0, r=0.0, weight_lr_power=2.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
                                      k=0, lr_max=-1.0, weight_sum=0.0))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            k = group["k"]
            sched = (k + 1) / group["warmup_steps"] if k < group["warmup_steps"] else 1.0
            bc2 = 1 - b2 ** (k + 1)
            lr = group["lr"] * sched
            group["lr_max"] = lr_max = max(lr, group["lr_max"])
            weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
            group["weight_sum"] += weight
            ckp1 = weight / group["weight_sum"] if group["weight_sum"] != 0 else 0
            for p in group["params"]:
                y, grad = p, p.grad.clone()
                st = self.state[p]
                if not st:
                    st["z"] = y.clone()
                    st["x"] = y.clone()
                    st["v"] = torch.zeros_like(p)
                z, x, v = st["z"], st["x"], st["v"]
                v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                denom = v.div(bc2).sqrt_().add_(group["eps"])
                gn = grad.div_(denom)
                if group["weight_decay"] != 0:
                    gn.add_(y, alpha=group["weight_decay"])
                z.sub_(gn, alpha=lr)
                x.mul_(1 - ckp1).add_(z, alpha=ckp1)
                y.copy_(x.mul(b1).add_(z, alpha=1 - b1))
            group["k"] = k + 1


CUSTOM = {"Lion": Lion, "Lamb": Lamb, "AdaBelief": AdaBelief, "Adafactor": Adafactor, "ScheduleFreeAdamW": ScheduleFreeAdamW}


def main(d):
    spec = json.load(open(f"{d}/cases.json"))
    shapes = spec["shapes"]
    names = spec["names"]
    steps = spec["steps"]
    sizes = [int(np.prod(s)) for s in shapes]
    total = sum(sizes)
    init = np.fromfile(f"{d}/params.bin", dtype="<f8")
    grads = np.fromfile(f"{d}/grads.bin", dtype="<f8").reshape(steps, total)
    lrs = spec["lr_factors"]
    for case in spec["cases"]:
        ps, off = [], 0
        for s, n in zip(shapes, sizes):
            ps.append(torch.tensor(init[off:off + n]).reshape(s).requires_grad_())
            off += n
        kwargs = dict(case["kwargs"])
        for k, v in list(kwargs.items()):
            if isinstance(v, list):
                kwargs[k] = tuple(v)
        if "groups" in case:  # per-parameter lr scale and weight decay: one group per parameter
            base_lr = kwargs["lr"]
            param_groups = [dict(params=[p], lr=base_lr * g["lr_scale"], weight_decay=g["weight_decay"]) for p, g in zip(ps, group_settings(names, case["groups"]))]
            scales = [g["lr_scale"] for g in group_settings(names, case["groups"])]
        else:
            param_groups = [dict(params=ps)]
            scales = [1.0]
            base_lr = kwargs.get("lr")
        cls = CUSTOM.get(case["optim"]) or getattr(torch.optim, case["optim"])
        if case["optim"] not in CUSTOM:
            kwargs["foreach"] = False
        opt = cls(param_groups, **kwargs)
        out = np.empty((steps, total))
        for t in range(steps):
            off = 0
            for p, n in zip(ps, sizes):
                p.grad = torch.tensor(grads[t, off:off + n]).reshape(p.shape)
                off += n
            if base_lr is not None:
                for g, sc in zip(opt.param_groups, scales if len(scales) == len(opt.param_groups) else scales * len(opt.param_groups)):
                    g["lr"] = base_lr * lrs[t] * sc
            opt.step()
            out[t] = torch.cat([p.detach().reshape(-1) for p in ps]).numpy()
        out.astype("<f8").tofile(f"{d}/{case['id']}.bin")


def group_settings(names, g):
    """Independent re-statement of whetstone's group rules: no decay for names containing a
    no_decay entry; layer decay lr x decay^(L-1-N) for `layer.N.`, decay^L for embeddings."""
    layers = [int(n.split("layer.")[1].split(".")[0]) for n in names if "layer." in n]
    L = max(layers) + 1 if layers else 0
    out = []
    for n in names:
        wd = 0.0 if any(s in n for s in g["no_decay"]) else g["weight_decay"]
        if "layer." in n:
            sc = g["layer_decay"] ** (L - 1 - int(n.split("layer.")[1].split(".")[0]))
        elif "embed" in n:
            sc = g["layer_decay"] ** L
        else:
            sc = 1.0
        out.append(dict(lr_scale=sc, weight_decay=wd))
    return out


if __name__ == "__main__":
    main(sys.argv[1])
