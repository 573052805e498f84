//! Save state → load into a fresh optimiser → continue equals the uninterrupted run, bit for
//! bit, for every optimiser (flat and per-tensor layouts) and every wrapper.

mod optim_common;

use optim_common::*;
use tch::Tensor;
use whetstone_optim::*;

/// Run 100 steps straight; and 40 steps, state() through a copy, a fresh optimiser over the
/// step-40 parameters (as a checkpoint's model weights), load_state, 60 more steps.
fn roundtrip(id: &str, lr: f64, build: &dyn Fn(Vec<Param>) -> Box<dyn Optimizer>, wd: f64) {
    let grads = grad_values();
    let mut a = build(make_params(&init_values(), wd));
    let straight = run(a.as_mut(), lr, &grads, 0, STEPS);

    let mut b = build(make_params(&init_values(), wd));
    let first = run(b.as_mut(), lr, &grads, 0, 40);
    let saved = b.state();
    // Deep copy through plain data, as a checkpoint would.
    let saved = OptimState { step: saved.step, tensors: saved.tensors.iter().map(|(n, t)| (n.clone(), t.copy())).collect() };
    let mid: Vec<f64> = first[first.len() - total()..].to_vec();
    drop(b);
    let mut c = build(make_params(&mid, wd));
    c.load_state(&saved).unwrap();
    let rest = run(c.as_mut(), lr, &grads, 40, STEPS);
    let resumed: Vec<f64> = first.into_iter().chain(rest).collect();
    let same = straight.iter().zip(&resumed).all(|(x, y)| x.to_bits() == y.to_bits());
    assert!(same, "{id}: resumed run differs from the uninterrupted one");
    assert_eq!(c.state().step, 100, "{id}: step count");
}

#[test]
fn every_optimiser_resumes_bit_exactly() {
    for case in cases() {
        for flat in [true, false] {
            roundtrip(&format!("{} flat={flat}", case.id), case.lr, &|p| (case.build)(p, flat).unwrap(), case.wd);
        }
    }
}

#[test]
fn wrappers_resume_bit_exactly() {
    let lookahead = |p: Vec<Param>| -> Box<dyn Optimizer> { Box::new(Lookahead::new(Adam::new(p, AdamConfig::default()).unwrap(), LookaheadConfig { k: 3, alpha: 0.5 }).unwrap()) };
    roundtrip("lookahead(adam)", 0.01, &lookahead, 0.0);
    let skip = |p: Vec<Param>| -> Box<dyn Optimizer> { Box::new(SkipNonFinite::new(NAdam::new(p, NAdamConfig::default()).unwrap())) };
    roundtrip("skip_nonfinite(nadam)", 0.01, &skip, 0.01);
    let sf = |p: Vec<Param>| -> Box<dyn Optimizer> { Box::new(Lookahead::new(ScheduleFreeAdamW::new(p, Default::default()).unwrap(), LookaheadConfig::default()).unwrap()) };
    roundtrip("lookahead(schedulefree)", 0.01, &sf, 0.0);
}

#[test]
fn state_names_are_per_parameter_whatever_the_layout() {
    let flat = Adam::with_layout(make_params(&init_values(), 0.0), AdamConfig { amsgrad: true, ..Default::default() }, true).unwrap();
    let per = Adam::with_layout(make_params(&init_values(), 0.0), AdamConfig { amsgrad: true, ..Default::default() }, false).unwrap();
    assert!(flat.inner().is_flat() && !per.inner().is_flat());
    let names = |s: OptimState| {
        let mut v: Vec<(String, Vec<i64>)> = s.tensors.iter().map(|(n, t)| (n.clone(), t.size())).collect();
        v.sort();
        v
    };
    let (a, b) = (names(flat.state()), names(per.state()));
    assert_eq!(a, b);
    assert!(a.iter().any(|(n, s)| n == "encoder.layer.0.dense.weight.max_exp_avg_sq" && s == &vec![4, 3]));
    // A flat-layout checkpoint loads into a per-tensor optimiser.
    let mut per = per;
    per.load_state(&flat.state()).unwrap();
    let _ = Tensor::new();
}
