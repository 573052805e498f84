//! Exactness against real torch.optim (and, for optimisers torch lacks, against the reference
//! implementations in `tests/oracle/torch_optim.py`).
//!
//! Protocol: 5 float64 tensors (embedding, 2-D weight, bias, LayerNorm weight, head), fixed
//! initial values and 100 steps of fixed gradients (magnitudes 1e-3…1e2, sign flips, a drifting
//! mean) and a varying learning rate; both sides run all 100 steps and every step's parameters
//! are compared. Criterion, elementwise: `|ours − torch| ≤ 1e-5 · max(|torch|, 1e-6)`. Every
//! case runs twice on our side, on flat buffers (the default; fused kernels for SGD/Adam/AdamW)
//! and one tensor at a time; SGD, Adam and AdamW run both layouts once more with
//! `kernel = "torch-fused"` (libtorch's fused CPU kernels, here on float64). The oracle runs
//! once per test binary (one Python process); if it cannot run, the tests fail.

mod optim_common;

use optim_common::*;
use serde_json::json;
use std::path::PathBuf;
use std::sync::OnceLock;
use tch::{nn, Device, Tensor};
use whetstone_optim::{Kernel, OptimConfig, Optimizer};

const TOL: f64 = 1e-5;
const FLOOR: f64 = 1e-6;

/// Group cases: (id, recipe TOML for whetstone, torch optimiser, kwargs, group rule for python).
fn group_cases() -> Vec<(&'static str, &'static str, &'static str, serde_json::Value, serde_json::Value)> {
    vec![
        (
            "groups_adamw_layer_decay",
            "kind = \"adamw\"\nlr = 0.01\nweight_decay = 0.1\nlayer_decay = 0.8",
            "AdamW",
            json!({"lr": 0.01}),
            json!({"no_decay": whetstone_optim::NO_DECAY, "weight_decay": 0.1, "layer_decay": 0.8}),
        ),
        (
            "groups_sgd_layer_decay",
            "kind = \"sgd\"\nlr = 0.05\nweight_decay = 0.01\nmomentum = 0.9\nlayer_decay = 0.5",
            "SGD",
            json!({"lr": 0.05, "momentum": 0.9}),
            json!({"no_decay": whetstone_optim::NO_DECAY, "weight_decay": 0.01, "layer_decay": 0.5}),
        ),
    ]
}

fn oracle() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let extra = group_cases().into_iter().map(|(id, _, optim, kw, g)| json!({"id": id, "optim": optim, "kwargs": kw, "groups": g})).collect();
        run_oracle(&cases(), extra)
    })
}

fn check(prefix: &str) {
    let dir = oracle();
    let grads = grad_values();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for case in cases().into_iter().filter(|c| c.id.starts_with(prefix)) {
        let theirs = oracle_trajectory(dir, case.id);
        for (flat, kernel) in case.variants() {
            let mut opt = case.make(make_params(&init_values(), case.wd), flat, kernel).unwrap();
            let ours = run(opt.as_mut(), case.lr, &grads, 0, STEPS);
            let (err, step) = max_rel_err(&ours, &theirs, FLOOR);
            let moved = ours[ours.len() - total()..].iter().zip(init_values()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(moved > 1e-3, "{} {kernel}: parameters barely moved ({moved:e}); the comparison would be vacuous", case.id);
            report.push(format!("{:<28} flat={flat:<5} kernel={kernel:<11} max rel err {err:.2e} (step {step})", case.id));
            if err.is_nan() || err > TOL {
                failures.push(format!("{} flat={flat} kernel={kernel}: {err:.3e} at step {step}", case.id));
            }
        }
    }
    assert!(!report.is_empty(), "no cases for `{prefix}`");
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "trajectories differ from the oracle:\n{}", failures.join("\n"));
}

#[test]
fn sgd_matches_torch() {
    check("sgd");
}

/// Both kernels ran every SGD / Adam / AdamW case (the variants are what `check` runs).
#[test]
fn torch_fused_kernel_is_covered() {
    let ids: Vec<&str> = cases().into_iter().filter(|c| c.variants().contains(&(false, Kernel::TorchFused)) && c.variants().contains(&(true, Kernel::TorchFused))).map(|c| c.id).collect();
    assert_eq!(ids.len(), 9, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("sgd") || id.starts_with("adam_") || id.starts_with("adamw")), "{ids:?}");
}
#[test]
fn adam_matches_torch() {
    check("adam_");
}
#[test]
fn adamw_matches_torch() {
    check("adamw");
}
#[test]
fn nadam_matches_torch() {
    check("nadam");
}
#[test]
fn radam_matches_torch() {
    check("radam");
}
#[test]
fn adagrad_matches_torch() {
    check("adagrad");
}
#[test]
fn rmsprop_matches_torch() {
    check("rmsprop");
}
#[test]
fn adamax_matches_torch() {
    check("adamax");
}
#[test]
fn lion_matches_reference() {
    check("lion");
}
#[test]
fn lamb_matches_reference() {
    check("lamb");
}
#[test]
fn adabelief_matches_reference() {
    check("adabelief");
}
#[test]
fn adafactor_matches_reference() {
    check("adafactor");
}
#[test]
fn schedule_free_adamw_matches_reference() {
    check("schedulefree");
}

/// Negative control: the comparison does tell different optimisers apart.
#[test]
fn comparison_detects_a_different_optimiser() {
    let dir = oracle();
    let (err, _) = max_rel_err(&oracle_trajectory(dir, "adam_default"), &oracle_trajectory(dir, "adamw_default"), FLOOR);
    assert!(err > 100.0 * TOL, "adam and adamw (wd 0.01) trajectories should differ, got {err:e}");
}

/// A VarStore with the fixture's names and values (float64).
fn varstore() -> nn::VarStore {
    let mut vs = nn::VarStore::new(Device::Cpu);
    for (n, s) in NAMES.iter().zip(SHAPES) {
        let parts: Vec<&str> = n.split('.').collect();
        let mut p = vs.root();
        for part in &parts[..parts.len() - 1] {
            p = p / *part;
        }
        let _ = p.zeros(parts[parts.len() - 1], s);
    }
    vs.double();
    let vals = init_values();
    let vars = vs.variables();
    let mut off = 0;
    tch::no_grad(|| {
        for (n, s) in NAMES.iter().zip(SHAPES) {
            let k = s.iter().product::<i64>() as usize;
            vars[*n].shallow_clone().copy_(&Tensor::from_slice(&vals[off..off + k]).reshape(s));
            off += k;
        }
    });
    vs
}

/// Run a recipe-built optimiser; parameters are fed and read back in NAMES order.
fn run_named(opt: &mut dyn Optimizer, vs: &nn::VarStore, lr: f64, grads: &[f64]) -> Vec<f64> {
    let vars = vs.variables();
    let ordered: Vec<Tensor> = NAMES.iter().map(|n| vars[*n].shallow_clone()).collect();
    let refs: Vec<&Tensor> = ordered.iter().collect();
    let mut out = Vec::new();
    for t in 0..STEPS {
        opt.zero_grad();
        backward(&refs, grads, t);
        opt.step(lr * lr_factor(t)).unwrap();
        out.extend(concat(&refs));
    }
    out
}

#[test]
fn param_groups_match_torch_param_groups() {
    let dir = oracle();
    let grads = grad_values();
    for (id, recipe, _, _, _) in group_cases() {
        let theirs = oracle_trajectory(dir, id);
        for kernel in ["whetstone", "torch-fused"] {
            for flat in [true, false] {
                let mut cfg: OptimConfig = toml::from_str(&format!("{recipe}\nkernel = \"{kernel}\"")).unwrap();
                cfg.flat = flat;
                let vs = varstore();
                let mut opt = cfg.build(&vs).unwrap();
                let ours = run_named(opt.as_mut(), &vs, cfg.lr, &grads);
                let (err, step) = max_rel_err(&ours, &theirs, FLOOR);
                eprintln!("{id:<28} flat={flat:<5} kernel={kernel:<11} max rel err {err:.2e} (step {step})");
                assert!(err <= TOL, "{id} flat={flat} kernel={kernel}: {err:.3e} at step {step}");
            }
        }
    }
}
