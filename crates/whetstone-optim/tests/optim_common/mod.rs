//! Shared fixtures for the optimiser tests: deterministic parameters and gradients, the case
//! list (torch kwargs + whetstone builder), a runner and the torch oracle.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};
use whetstone_optim::*;

pub const STEPS: usize = 100;
/// Names and shapes: an embedding, a 2-D weight and its bias in layer 0, a LayerNorm weight in
/// layer 1 and a head.
pub const NAMES: [&str; 5] = ["embeddings.word.weight", "encoder.layer.0.dense.weight", "encoder.layer.0.dense.bias", "encoder.layer.1.LayerNorm.weight", "classifier.weight"];
pub const SHAPES: [&[i64]; 5] = [&[5, 2], &[4, 3], &[4], &[3], &[2, 3]];

pub fn total() -> usize {
    SHAPES.iter().map(|s| s.iter().product::<i64>() as usize).sum()
}

/// splitmix64 → uniform [−1, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// Initial parameters, concatenated.
pub fn init_values() -> Vec<f64> {
    let mut r = Rng(7);
    (0..total()).map(|_| r.next()).collect()
}

/// Gradients for every step (steps × total): magnitudes from 1e-3 to 1e2, a drifting mean,
/// and sign flips every third step.
pub fn grad_values() -> Vec<f64> {
    let mut r = Rng(11);
    let mut out = Vec::with_capacity(STEPS * total());
    for t in 0..STEPS {
        let mag = 10f64.powi((t * 7 % 6) as i32 - 3);
        let flip = if t % 3 == 2 { -1.0 } else { 1.0 };
        let drift = if (t / 10) % 2 == 0 { 0.3 } else { -0.2 };
        for _ in 0..total() {
            out.push(flip * mag * (r.next() + drift));
        }
    }
    out
}

/// Learning-rate multiplier of step t (a schedule, so lr-dependent terms are exercised).
pub fn lr_factor(t: usize) -> f64 {
    1.0 + 0.5 * (t as f64).sin()
}

/// Fresh leaf parameters (float64, requires_grad) holding `values`.
pub fn make_params(values: &[f64], wd: f64) -> Vec<Param> {
    let mut off = 0;
    NAMES
        .iter()
        .zip(SHAPES)
        .map(|(n, s)| {
            let k = s.iter().product::<i64>() as usize;
            let t = Tensor::from_slice(&values[off..off + k]).reshape(s).set_requires_grad(true);
            off += k;
            Param { name: n.to_string(), tensor: t, weight_decay: wd }
        })
        .collect()
}

pub fn concat(params: &[&Tensor]) -> Vec<f64> {
    let flat = Tensor::cat(&params.iter().map(|p| p.detach().reshape([-1])).collect::<Vec<_>>(), 0).to_kind(Kind::Double);
    Vec::<f64>::try_from(&flat).unwrap()
}

/// Put step `t`'s gradients into the parameters through autograd (`Σ θ·G` has gradient `G`).
pub fn backward(params: &[&Tensor], grads: &[f64], t: usize) {
    let n = total();
    let g = &grads[t * n..(t + 1) * n];
    let mut off = 0;
    let mut loss: Option<Tensor> = None;
    for p in params {
        let k = p.numel();
        let gt = Tensor::from_slice(&g[off..off + k]).reshape(p.size()).to_kind(p.kind());
        off += k;
        let l = (*p * gt).sum(Kind::Double);
        loss = Some(match loss {
            None => l,
            Some(x) => x + l,
        });
    }
    loss.unwrap().backward();
}

/// Run `opt` over steps `from..to`; returns the parameters after every step.
pub fn run(opt: &mut dyn Optimizer, lr: f64, grads: &[f64], from: usize, to: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for t in from..to {
        opt.zero_grad();
        let ps: Vec<Tensor> = opt.params().into_iter().map(Tensor::shallow_clone).collect();
        backward(&ps.iter().collect::<Vec<_>>(), grads, t);
        opt.step(lr * lr_factor(t)).unwrap();
        out.extend(concat(&opt.params()));
    }
    out
}

pub type Build = fn(Vec<Param>, bool) -> whetstone_optim::Result<Box<dyn Optimizer>>;
/// A builder for the optimisers that run with either [`Kernel`] (SGD, Adam, AdamW).
pub type KernelBuild = fn(Vec<Param>, bool, Kernel) -> whetstone_optim::Result<Box<dyn Optimizer>>;

/// A parity case: the torch class and kwargs, and the whetstone optimiser.
pub struct Case {
    pub id: &'static str,
    pub optim: &'static str,
    pub kwargs: Value,
    pub lr: f64,
    pub wd: f64,
    /// The optimiser with whetstone's kernel.
    pub build: Build,
    /// The optimiser with a chosen kernel, for those that have `kernel = "torch-fused"`.
    pub with_kernel: Option<KernelBuild>,
}

impl Case {
    /// Every way our side runs the case: (flat, kernel), both layouts for each kernel.
    pub fn variants(&self) -> Vec<(bool, Kernel)> {
        let kernels: &[Kernel] = if self.with_kernel.is_some() { &[Kernel::Whetstone, Kernel::TorchFused] } else { &[Kernel::Whetstone] };
        kernels.iter().flat_map(|&k| [(true, k), (false, k)]).collect()
    }

    /// Build the optimiser for one variant.
    pub fn make(&self, params: Vec<Param>, flat: bool, kernel: Kernel) -> whetstone_optim::Result<Box<dyn Optimizer>> {
        match (self.with_kernel, kernel) {
            (Some(b), k) => b(params, flat, k),
            (None, Kernel::Whetstone) => (self.build)(params, flat),
            (None, k) => panic!("{}: no {k} variant", self.id),
        }
    }
}

macro_rules! case {
    ($id:expr, $optim:expr, $lr:expr, $wd:expr, $kw:tt, $build:expr) => {{
        let mut kw = json!($kw);
        kw["lr"] = json!($lr);
        if $wd != 0.0 {
            kw["weight_decay"] = json!($wd);
        }
        Case { id: $id, optim: $optim, kwargs: kw, lr: $lr, wd: $wd, build: $build, with_kernel: None }
    }};
}

/// A case with a kernel choice: `$build` is `|params, flat, kernel| ..`.
macro_rules! kcase {
    ($id:expr, $optim:expr, $lr:expr, $wd:expr, $kw:tt, $build:expr) => {{
        let mut c = case!($id, $optim, $lr, $wd, $kw, |p, f| ($build)(p, f, Kernel::Whetstone));
        c.with_kernel = Some($build as KernelBuild);
        c
    }};
}

fn bx<O: Optimizer + 'static>(o: whetstone_optim::Result<O>) -> whetstone_optim::Result<Box<dyn Optimizer>> {
    o.map(|o| Box::new(o) as Box<dyn Optimizer>)
}

/// Every torch.optim case (3+ settings each) and every reference-implementation case.
pub fn cases() -> Vec<Case> {
    vec![
        kcase!("sgd_plain", "SGD", 0.05, 0.0, {}, |p: Vec<Param>, f: bool, k: Kernel| bx(Sgd::with_kernel(p, SgdConfig { momentum: 0.0, ..Default::default() }, f, k))),
        kcase!("sgd_momentum_damp_wd", "SGD", 0.05, 0.01, {"momentum": 0.9, "dampening": 0.1}, |p: Vec<Param>, f: bool, k: Kernel| bx(Sgd::with_kernel(p, SgdConfig { momentum: 0.9, dampening: 0.1, nesterov: false }, f, k))),
        kcase!("sgd_nesterov_wd", "SGD", 0.02, 0.001, {"momentum": 0.8, "nesterov": true}, |p: Vec<Param>, f: bool, k: Kernel| bx(Sgd::with_kernel(p, SgdConfig { momentum: 0.8, dampening: 0.0, nesterov: true }, f, k))),
        kcase!("adam_default", "Adam", 0.01, 0.0, {}, |p: Vec<Param>, f: bool, k: Kernel| bx(Adam::with_kernel(p, AdamConfig::default(), f, k))),
        kcase!("adam_amsgrad_wd", "Adam", 0.01, 0.01, {"amsgrad": true, "betas": [0.8, 0.99]}, |p: Vec<Param>, f: bool, k: Kernel| bx(Adam::with_kernel(p, AdamConfig { amsgrad: true, betas: (0.8, 0.99), ..Default::default() }, f, k))),
        kcase!("adam_eps_betas", "Adam", 0.02, 0.0, {"eps": 1e-3, "betas": [0.5, 0.9]}, |p: Vec<Param>, f: bool, k: Kernel| bx(Adam::with_kernel(p, AdamConfig { eps: 1e-3, betas: (0.5, 0.9), amsgrad: false }, f, k))),
        kcase!("adamw_default", "AdamW", 0.01, 0.01, {}, |p: Vec<Param>, f: bool, k: Kernel| bx(AdamW::with_kernel(p, AdamWConfig::default(), f, k))),
        kcase!("adamw_amsgrad", "AdamW", 0.01, 0.1, {"amsgrad": true}, |p: Vec<Param>, f: bool, k: Kernel| bx(AdamW::with_kernel(p, AdamWConfig { amsgrad: true, ..Default::default() }, f, k))),
        kcase!("adamw_betas_eps_nowd", "AdamW", 0.005, 0.0, {"betas": [0.95, 0.98], "eps": 1e-6, "weight_decay": 0.0}, |p: Vec<Param>, f: bool, k: Kernel| bx(AdamW::with_kernel(p, AdamWConfig { betas: (0.95, 0.98), eps: 1e-6, amsgrad: false }, f, k))),
        case!("nadam_default", "NAdam", 0.01, 0.0, {}, |p, f| bx(NAdam::with_layout(p, NAdamConfig::default(), f))),
        case!("nadam_wd_decay", "NAdam", 0.01, 0.01, {"momentum_decay": 8e-3}, |p, f| bx(NAdam::with_layout(p, NAdamConfig { momentum_decay: 8e-3, ..Default::default() }, f))),
        case!("nadam_decoupled", "NAdam", 0.01, 0.1, {"decoupled_weight_decay": true, "betas": [0.8, 0.99]}, |p, f| bx(NAdam::with_layout(p, NAdamConfig { decoupled_weight_decay: true, betas: (0.8, 0.99), ..Default::default() }, f))),
        case!("radam_default", "RAdam", 0.01, 0.0, {}, |p, f| bx(RAdam::with_layout(p, RAdamConfig::default(), f))),
        case!("radam_wd", "RAdam", 0.01, 0.01, {"betas": [0.9, 0.99]}, |p, f| bx(RAdam::with_layout(p, RAdamConfig { betas: (0.9, 0.99), ..Default::default() }, f))),
        case!("radam_decoupled", "RAdam", 0.01, 0.1, {"decoupled_weight_decay": true, "eps": 1e-4}, |p, f| bx(RAdam::with_layout(p, RAdamConfig { decoupled_weight_decay: true, eps: 1e-4, ..Default::default() }, f))),
        case!("adagrad_default", "Adagrad", 0.1, 0.0, {}, |p, f| bx(Adagrad::with_layout(p, AdagradConfig::default(), f))),
        case!("adagrad_decay_init", "Adagrad", 0.1, 0.0, {"lr_decay": 0.01, "initial_accumulator_value": 0.1}, |p, f| bx(Adagrad::with_layout(p, AdagradConfig { lr_decay: 0.01, initial_accumulator_value: 0.1, ..Default::default() }, f))),
        case!("adagrad_wd_eps", "Adagrad", 0.05, 0.01, {"eps": 1e-6}, |p, f| bx(Adagrad::with_layout(p, AdagradConfig { eps: 1e-6, ..Default::default() }, f))),
        case!("rmsprop_default", "RMSprop", 0.01, 0.0, {}, |p, f| bx(Rmsprop::with_layout(p, RmspropConfig::default(), f))),
        case!("rmsprop_centered_momentum", "RMSprop", 0.005, 0.0, {"centered": true, "momentum": 0.9}, |p, f| bx(Rmsprop::with_layout(p, RmspropConfig { centered: true, momentum: 0.9, ..Default::default() }, f))),
        case!("rmsprop_wd_alpha", "RMSprop", 0.01, 0.01, {"alpha": 0.9, "momentum": 0.5}, |p, f| bx(Rmsprop::with_layout(p, RmspropConfig { alpha: 0.9, momentum: 0.5, ..Default::default() }, f))),
        case!("adamax_default", "Adamax", 0.02, 0.0, {}, |p, f| bx(Adamax::with_layout(p, AdamaxConfig::default(), f))),
        case!("adamax_betas_wd", "Adamax", 0.02, 0.01, {"betas": [0.8, 0.99]}, |p, f| bx(Adamax::with_layout(p, AdamaxConfig { betas: (0.8, 0.99), ..Default::default() }, f))),
        case!("adamax_eps", "Adamax", 0.01, 0.0, {"eps": 1e-4}, |p, f| bx(Adamax::with_layout(p, AdamaxConfig { eps: 1e-4, ..Default::default() }, f))),
        // Reference implementations in the oracle script (not in torch.optim).
        case!("lion", "Lion", 0.001, 0.1, {}, |p, f| bx(Lion::with_layout(p, LionConfig::default(), f))),
        case!("lion_betas", "Lion", 0.003, 0.0, {"betas": [0.95, 0.98]}, |p, f| bx(Lion::with_layout(p, LionConfig { betas: (0.95, 0.98) }, f))),
        case!("lamb", "Lamb", 0.01, 0.01, {}, |p, _| bx(Lamb::new(p, LambConfig::default()))),
        case!("adabelief", "AdaBelief", 0.01, 0.01, {}, |p, f| bx(AdaBelief::with_layout(p, AdaBeliefConfig::default(), f))),
        case!("adafactor", "Adafactor", 0.01, 0.0, {}, |p, _| bx(Adafactor::new(p, AdafactorConfig::default()))),
        case!("adafactor_beta1_wd", "Adafactor", 0.01, 0.01, {"beta1": 0.9, "scale_parameter": false}, |p, _| bx(Adafactor::new(p, AdafactorConfig { beta1: Some(0.9), scale_parameter: false, ..Default::default() }))),
        case!("schedulefree_adamw", "ScheduleFreeAdamW", 0.01, 0.01, {"warmup_steps": 10}, |p, _| bx(ScheduleFreeAdamW::new(p, ScheduleFreeAdamWConfig { warmup_steps: 10, ..Default::default() }))),
    ]
}

/// The Python that runs the oracle: `$WHETSTONE_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("WHETSTONE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Write the inputs, run `tests/oracle/torch_optim.py` once for all `cases` (+ `extra` case
/// specs), and return the directory holding `<id>.bin`. Panics (fails the test) with a clear
/// message when the oracle cannot run.
pub fn run_oracle(cases: &[Case], extra: Vec<Value>) -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let bytes = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(dir.join("params.bin"), bytes(&init_values())).unwrap();
    std::fs::write(dir.join("grads.bin"), bytes(&grad_values())).unwrap();
    let mut specs: Vec<Value> = cases.iter().map(|c| json!({"id": c.id, "optim": c.optim, "kwargs": c.kwargs})).collect();
    specs.extend(extra);
    let spec = json!({
        "names": NAMES, "shapes": SHAPES, "steps": STEPS,
        "lr_factors": (0..STEPS).map(lr_factor).collect::<Vec<_>>(),
        "cases": specs,
    });
    std::fs::write(dir.join("cases.json"), spec.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/torch_optim.py");
    let py = python();
    let out = std::process::Command::new(&py).arg(&script).arg(&dir).output().unwrap_or_else(|e| panic!("ORACLE MISSING: cannot run `{py}` ({e}); set WHETSTONE_PYTHON to a Python with torch"));
    assert!(out.status.success(), "ORACLE FAILED: `{py} {}` exited with {}:\n{}", script.display(), out.status, String::from_utf8_lossy(&out.stderr));
    dir
}

/// Read the oracle trajectory of case `id`.
pub fn oracle_trajectory(dir: &Path, id: &str) -> Vec<f64> {
    let b = std::fs::read(dir.join(format!("{id}.bin"))).unwrap_or_else(|e| panic!("oracle output for `{id}` missing: {e}"));
    b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Largest elementwise relative error `|a−b| / max(|b|, floor)` over the trajectory, with the
/// step where it occurs.
pub fn max_rel_err(ours: &[f64], theirs: &[f64], floor: f64) -> (f64, usize) {
    assert_eq!(ours.len(), theirs.len(), "trajectory lengths differ");
    let n = total();
    let mut worst = (0.0, 0);
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let e = (a - b).abs() / b.abs().max(floor);
        if e.is_nan() || e > worst.0 {
            worst = (e, i / n);
        }
    }
    worst
}
