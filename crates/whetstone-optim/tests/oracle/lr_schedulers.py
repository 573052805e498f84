"""PyTorch oracle for whetstone-optim's schedules and initialisers.

Reads one JSON request on stdin and writes one JSON answer on stdout, so a test pays for
`import torch` once. The base learning rate is 1.0, so every learning rate is also the
multiplier whetstone's `Schedule::factor` returns.

Request:
  {"schedulers": [{"name": str, "steps": int, "make": SPEC, "metrics": [float]?}],
   "inits": [{"name": str, "fn": "xavier_uniform_", "shape": [int], "seed": int, "args": {}}],
   "fans": [[int]], "gains": [["leaky_relu", 0.2]]}
  SPEC is {"type": <torch.optim.lr_scheduler class name or hf_* lambda>, "args": {...}};
  SequentialLR takes {"schedulers": [SPEC], "milestones": [int]} in its args.

Answer:
  {"schedulers": {name: {"chain": [lr after t calls to step(), t = 0..steps-1],
                         "closed": [the closed form at t] or null}},
   "inits": {name: [values, row-major]}, "fans": [[fan_in, fan_out]], "gains": [float],
   "torch": version}
For ReduceLROnPlateau, "chain" is the lr before any metric, then after each of "metrics".

The hf_* lambdas are transcribed from transformers/optimization.py (v4.4x):
get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup,
get_cosine_with_min_lr_schedule_with_warmup, get_polynomial_decay_schedule_with_warmup,
get_constant_schedule_with_warmup and get_inverse_sqrt_schedule.
"""

import json
import math
import sys
import warnings

import torch
from torch.optim import lr_scheduler as L

warnings.filterwarnings("ignore")


def hf_linear(num_warmup_steps, num_training_steps):
    def f(current_step):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1, num_warmup_steps))
        return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))

    return f


def hf_cosine(num_warmup_steps, num_training_steps, num_cycles=0.5, min_lr_rate=None):
    def f(current_step):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1, num_warmup_steps))
        progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
        factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
        if min_lr_rate is None:  # get_cosine_schedule_with_warmup
            return max(0.0, factor)
        factor = factor * (1 - min_lr_rate) + min_lr_rate  # get_cosine_with_min_lr_schedule_with_warmup
        return max(0, factor)

    return f


def hf_polynomial(num_warmup_steps, num_training_steps, lr_end, power, lr_init=1.0):
    def f(current_step):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1, num_warmup_steps))
        elif current_step > num_training_steps:
            return lr_end / lr_init
        else:
            lr_range = lr_init - lr_end
            decay_steps = num_training_steps - num_warmup_steps
            pct_remaining = 1 - (current_step - num_warmup_steps) / decay_steps
            decay = lr_range * pct_remaining**power + lr_end
            return decay / lr_init

    return f


def hf_constant(num_warmup_steps):
    def f(current_step):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1.0, num_warmup_steps))
        return 1.0

    return f


def hf_inverse_sqrt(num_warmup_steps, timescale=None):
    if timescale is None:
        timescale = num_warmup_steps or 10_000

    def f(current_step):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1, num_warmup_steps))
        shift = timescale - num_warmup_steps
        return 1.0 / math.sqrt((current_step + shift) / timescale)

    return f


HF = {"hf_linear": hf_linear, "hf_cosine": hf_cosine, "hf_polynomial": hf_polynomial, "hf_constant": hf_constant, "hf_inverse_sqrt": hf_inverse_sqrt}


def build(opt, spec):
    kind, args = spec["type"], dict(spec.get("args", {}))
    if kind in HF:
        return L.LambdaLR(opt, HF[kind](**args))
    if kind == "SequentialLR":
        subs = [build(opt, s) for s in args.pop("schedulers")]
        return L.SequentialLR(opt, subs, **args)
    return getattr(L, kind)(opt, **args)


def fresh_optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def run_scheduler(case):
    opt = fresh_optimizer()
    sched = build(opt, case["make"])
    lr = lambda: float(opt.param_groups[0]["lr"])
    chain = [lr()]
    if "metrics" in case:
        for m in case["metrics"]:
            opt.step()
            sched.step(m)
            chain.append(lr())
        return {"chain": chain, "closed": None}
    for _ in range(case["steps"] - 1):
        opt.step()
        sched.step()
        chain.append(lr())
    closed = None
    if hasattr(sched, "_get_closed_form_lr"):
        copt = fresh_optimizer()
        c = build(copt, case["make"])
        closed = []
        for t in range(case["steps"]):
            c.last_epoch = t
            closed.append(float(c._get_closed_form_lr()[0]))
    return {"chain": chain, "closed": closed}


def run_init(case):
    torch.manual_seed(case["seed"])
    t = torch.empty(case["shape"])
    getattr(torch.nn.init, case["fn"])(t, **case.get("args", {}))
    return t.flatten().tolist()


def main():
    req = json.load(sys.stdin)
    out = {
        "torch": torch.__version__,
        "schedulers": {c["name"]: run_scheduler(c) for c in req.get("schedulers", [])},
        "inits": {c["name"]: run_init(c) for c in req.get("inits", [])},
        "fans": [list(torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(s))) for s in req.get("fans", [])],
        "gains": [torch.nn.init.calculate_gain(*g) for g in req.get("gains", [])],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
