//! Every schedule against its torch.optim.lr_scheduler counterpart (or Hugging Face's lambda
//! run through `LambdaLR`), step by step, through the committed oracle
//! `tests/oracle/lr_schedulers.py`. No torch, no pass: a missing oracle fails the test.
//!
//! The base learning rate is 1, so torch's lr is whetstone's factor. torch's lr for update
//! `t + 1` is the one after `t` calls to `scheduler.step()`: the oracle's `chain[t]`, compared
//! with `Schedule::factor(t, total)`.

mod lr_oracle;

use lr_oracle::oracle;
use serde_json::{json, Value};
use whetstone_optim::{Plateau, PlateauConfig, Schedule};

/// Largest relative error allowed against torch's own step-by-step lr. torch computes some
/// schedules by multiplying the previous lr by a ratio (the "chainable" form); whetstone uses
/// the closed form. Over 240 steps the two agree to ~1e-13, so 1e-9 leaves room for nothing but
/// a real discrepancy.
const TOL: f64 = 1e-9;
/// Against torch's `_get_closed_form_lr` (and the Hugging Face lambdas, which are closed
/// forms) the only differences are the order of floating-point operations.
const TOL_CLOSED: f64 = 1e-12;
const STEPS: u64 = 240;

fn schedule(toml_text: &str) -> Schedule {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("{toml_text}: {e}"))
}

fn rel_err(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / b.abs().max(1e-300)
    }
}

/// (name, whetstone schedule as recipe TOML, torch scheduler spec).
///
/// Not here: warmup then `one-cycle`. torch cannot express it: `OneCycleLR` overwrites the
/// group's `initial_lr`, so inside `SequentialLR` the `LinearLR` warmup ramps towards
/// `max_lr / div_factor` instead of the base lr. `schedule_config.rs` checks the composition
/// against `one-cycle` shifted by the warmup.
fn step_cases() -> Vec<(&'static str, &'static str, Value)> {
    let t = STEPS;
    let linear_warmup = |start: f64, w: u64| json!({"type": "LinearLR", "args": {"start_factor": start, "end_factor": 1.0, "total_iters": w}});
    let seq = |w: u64, first: Value, then: Value| json!({"type": "SequentialLR", "args": {"schedulers": [first, then], "milestones": [w]}});
    vec![
        ("hf-linear (legacy kind)", "kind = \"warmup-linear\"\nwarmup_steps = 24", json!({"type": "hf_linear", "args": {"num_warmup_steps": 24, "num_training_steps": t}})),
        ("hf-linear", "kind = \"warmup\"\nwarmup_ratio = 0.1\nthen = { kind = \"linear\" }", json!({"type": "hf_linear", "args": {"num_warmup_steps": 24, "num_training_steps": t}})),
        ("hf-cosine (legacy kind)", "kind = \"warmup-cosine\"\nwarmup_ratio = 0.1", json!({"type": "hf_cosine", "args": {"num_warmup_steps": 24, "num_training_steps": t}})),
        ("hf-cosine-min-lr", "kind = \"warmup\"\nwarmup_steps = 17\nthen = { kind = \"cosine\", min_ratio = 0.1 }", json!({"type": "hf_cosine", "args": {"num_warmup_steps": 17, "num_training_steps": t, "min_lr_rate": 0.1}})),
        ("hf-polynomial", "kind = \"warmup\"\nwarmup_steps = 30\nthen = { kind = \"polynomial\", power = 2.0, end_factor = 1e-3 }", json!({"type": "hf_polynomial", "args": {"num_warmup_steps": 30, "num_training_steps": t, "lr_end": 1e-3, "power": 2.0}})),
        ("hf-constant (legacy kind)", "kind = \"warmup-constant\"\nwarmup_steps = 24", json!({"type": "hf_constant", "args": {"num_warmup_steps": 24}})),
        ("hf-constant", "kind = \"warmup\"\nwarmup_steps = 24", json!({"type": "hf_constant", "args": {"num_warmup_steps": 24}})),
        ("hf-inverse-sqrt", "kind = \"inverse-sqrt\"\nwarmup_steps = 40", json!({"type": "hf_inverse_sqrt", "args": {"num_warmup_steps": 40}})),
        ("hf-inverse-sqrt-timescale", "kind = \"inverse-sqrt\"\nwarmup_steps = 10\ntimescale = 100", json!({"type": "hf_inverse_sqrt", "args": {"num_warmup_steps": 10, "timescale": 100}})),
        ("constant", "kind = \"constant\"", json!({"type": "ConstantLR", "args": {"factor": 1.0, "total_iters": 0}})),
        ("StepLR", "kind = \"step\"\nstep_size = 30\ngamma = 0.5", json!({"type": "StepLR", "args": {"step_size": 30, "gamma": 0.5}})),
        ("MultiStepLR", "kind = \"multi-step\"\nmilestones = [50, 120, 120, 200]\ngamma = 0.3", json!({"type": "MultiStepLR", "args": {"milestones": [50, 120, 120, 200], "gamma": 0.3}})),
        ("ExponentialLR", "kind = \"exponential\"\ngamma = 0.98", json!({"type": "ExponentialLR", "args": {"gamma": 0.98}})),
        ("CosineAnnealingLR", "kind = \"cosine\"\nmin_ratio = 0.05", json!({"type": "CosineAnnealingLR", "args": {"T_max": t, "eta_min": 0.05}})),
        ("LinearLR", "kind = \"linear\"\nstart_factor = 0.25\nend_factor = 0.75", json!({"type": "LinearLR", "args": {"start_factor": 0.25, "end_factor": 0.75, "total_iters": t}})),
        ("PolynomialLR", "kind = \"polynomial\"\npower = 1.7", json!({"type": "PolynomialLR", "args": {"total_iters": t, "power": 1.7}})),
        ("OneCycleLR", "kind = \"one-cycle\"", json!({"type": "OneCycleLR", "args": {"max_lr": 1.0, "total_steps": t, "cycle_momentum": false}})),
        (
            "OneCycleLR-linear-three-phase",
            "kind = \"one-cycle\"\nmax_factor = 2.0\npct_start = 0.25\nanneal = \"linear\"\ndiv_factor = 10.0\nfinal_div_factor = 100.0\nthree_phase = true",
            json!({"type": "OneCycleLR", "args": {"max_lr": 2.0, "total_steps": t, "pct_start": 0.25, "anneal_strategy": "linear", "div_factor": 10.0, "final_div_factor": 100.0, "three_phase": true, "cycle_momentum": false}}),
        ),
        (
            "OneCycleLR-cos-three-phase-odd",
            "kind = \"one-cycle\"\npct_start = 0.37\nthree_phase = true",
            json!({"type": "OneCycleLR", "args": {"max_lr": 1.0, "total_steps": t, "pct_start": 0.37, "three_phase": true, "cycle_momentum": false}}),
        ),
        (
            "SequentialLR(LinearLR, CosineAnnealingLR)",
            "kind = \"warmup\"\nwarmup_steps = 20\nstart_factor = 0.1\nthen = { kind = \"cosine\" }",
            seq(20, linear_warmup(0.1, 20), json!({"type": "CosineAnnealingLR", "args": {"T_max": t - 20, "eta_min": 0.0}})),
        ),
        (
            "SequentialLR(LinearLR, StepLR)",
            "kind = \"warmup\"\nwarmup_steps = 25\nstart_factor = 0.01\n[then]\nkind = \"step\"\nstep_size = 40\ngamma = 0.5",
            seq(25, linear_warmup(0.01, 25), json!({"type": "StepLR", "args": {"step_size": 40, "gamma": 0.5}})),
        ),
        (
            "SequentialLR(LinearLR, ExponentialLR)",
            "kind = \"warmup\"\nwarmup_steps = 10\nstart_factor = 0.5\nthen = { kind = \"exponential\", gamma = 0.99 }",
            seq(10, linear_warmup(0.5, 10), json!({"type": "ExponentialLR", "args": {"gamma": 0.99}})),
        ),
        (
            "SequentialLR(LinearLR, PolynomialLR)",
            "kind = \"warmup\"\nwarmup_steps = 40\nstart_factor = 0.2\nthen = { kind = \"polynomial\", power = 0.5 }",
            seq(40, linear_warmup(0.2, 40), json!({"type": "PolynomialLR", "args": {"total_iters": t - 40, "power": 0.5}})),
        ),
    ]
}

/// A validation-loss-like sequence: falling, noisy, with exact repeats and flat stretches.
fn loss_curve(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let x = i as f64;
            let v = 1.0 / (1.0 + 0.05 * x) + 0.02 * (1.3 * x).sin();
            if (60..90).contains(&i) || (150..200).contains(&i) {
                0.5 + 1e-5 * (x * 0.7).sin()
            } else {
                v
            }
        })
        .collect()
}

/// (name, config, torch kwargs, metrics).
fn plateau_cases() -> Vec<(&'static str, PlateauConfig, Value, Vec<f64>)> {
    use whetstone_optim::{PlateauMode::*, ThresholdMode::*};
    let loss = loss_curve(STEPS as usize);
    let acc: Vec<f64> = loss.iter().map(|l| 1.0 - l).collect();
    let mut with_nan = loss.clone();
    with_nan[10] = f64::NAN;
    with_nan[100] = f64::NAN;
    let d = PlateauConfig::default();
    vec![
        ("ReduceLROnPlateau-defaults", d.clone(), json!({}), loss.clone()),
        (
            "ReduceLROnPlateau-min-rel-cooldown",
            PlateauConfig { patience: 3, factor: 0.5, cooldown: 2, threshold: 1e-3, ..d.clone() },
            json!({"patience": 3, "factor": 0.5, "cooldown": 2, "threshold": 1e-3}),
            loss.clone(),
        ),
        (
            "ReduceLROnPlateau-min-abs-min-lr",
            PlateauConfig { patience: 2, factor: 0.3, threshold_mode: Abs, threshold: 1e-2, min_factor: 1e-3, ..d.clone() },
            json!({"patience": 2, "factor": 0.3, "threshold_mode": "abs", "threshold": 1e-2, "min_lr": 1e-3}),
            loss.clone(),
        ),
        (
            "ReduceLROnPlateau-max-rel",
            PlateauConfig { mode: Max, patience: 4, factor: 0.7, ..d.clone() },
            json!({"mode": "max", "patience": 4, "factor": 0.7}),
            acc.clone(),
        ),
        (
            "ReduceLROnPlateau-max-abs-eps",
            PlateauConfig { mode: Max, threshold_mode: Abs, threshold: 5e-3, patience: 1, factor: 0.2, eps: 1e-4, cooldown: 1, ..d.clone() },
            json!({"mode": "max", "threshold_mode": "abs", "threshold": 5e-3, "patience": 1, "factor": 0.2, "eps": 1e-4, "cooldown": 1}),
            acc,
        ),
        ("ReduceLROnPlateau-nan-metrics", PlateauConfig { patience: 2, factor: 0.5, ..d }, json!({"patience": 2, "factor": 0.5}), with_nan),
    ]
}

#[test]
fn schedules_match_torch_lr_schedulers_at_every_step() {
    let cases = step_cases();
    let plateaus = plateau_cases();
    let mut requests: Vec<Value> = cases.iter().map(|(name, _, make)| json!({"name": name, "steps": STEPS, "make": make})).collect();
    for (name, _, kwargs, metrics) in &plateaus {
        // JSON has no NaN: the oracle gets the string "nan", which float() reads.
        let m: Vec<Value> = metrics.iter().map(|&x| if x.is_nan() { json!("nan") } else { json!(x) }).collect();
        requests.push(json!({"name": name, "steps": metrics.len() + 1, "make": {"type": "ReduceLROnPlateau", "args": kwargs}, "metrics": m}));
    }
    let answer = oracle(&json!({"schedulers": requests}));
    let got = &answer["schedulers"];

    let mut failures = Vec::new();
    let mut report = Vec::new();
    for (name, toml_text, _) in &cases {
        let s = schedule(toml_text);
        s.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        let chain: Vec<f64> = serde_json::from_value(got[name]["chain"].clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(chain.len() as u64, STEPS, "{name}");
        let ours: Vec<f64> = (0..STEPS).map(|t| s.factor(t, STEPS)).collect();
        let worst = |theirs: &[f64]| (0..theirs.len()).map(|t| (rel_err(ours[t], theirs[t]), t)).fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a });
        let (e, at) = worst(&chain);
        let mut line = format!("{name:44} chain {e:9.2e}");
        if e > TOL {
            failures.push(format!("{name}: rel err {e:.3e} at step {at}: whetstone {} torch {}", ours[at], chain[at]));
        }
        // LambdaLR and OneCycleLR compute each lr afresh: no chain, so no drift to allow for.
        let closed_in_torch = name.starts_with("hf-") || name.starts_with("OneCycleLR");
        if let Ok(closed) = serde_json::from_value::<Vec<f64>>(got[name]["closed"].clone()) {
            let (e, at) = worst(&closed);
            line += &format!("  closed {e:9.2e}");
            if e > TOL_CLOSED {
                failures.push(format!("{name}: closed form rel err {e:.3e} at step {at}: whetstone {} torch {}", ours[at], closed[at]));
            }
        } else if closed_in_torch && e > TOL_CLOSED {
            failures.push(format!("{name}: rel err {e:.3e} against a closed-form lambda"));
        }
        report.push(line);
    }
    for (name, config, _, metrics) in &plateaus {
        let chain: Vec<f64> = serde_json::from_value(got[name]["chain"].clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut p = Plateau::new(config.clone());
        let mut ours = vec![p.factor()];
        ours.extend(metrics.iter().map(|&m| p.observe(m)));
        let reductions = ours.windows(2).filter(|w| w[1] < w[0]).count();
        let e = ours.iter().zip(&chain).map(|(a, b)| rel_err(*a, *b)).fold(0.0, f64::max);
        report.push(format!("{name:44} chain {e:9.2e}  ({reductions} reductions, final {:.3e})", ours[ours.len() - 1]));
        if e > TOL_CLOSED || reductions == 0 {
            failures.push(format!("{name}: rel err {e:.3e}, {reductions} reductions\n ours {ours:?}\n torch {chain:?}"));
        }
    }
    eprintln!("torch {}; max relative error over {STEPS} steps:\n{}", answer["torch"], report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
