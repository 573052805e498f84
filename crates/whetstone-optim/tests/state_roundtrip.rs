//! Save state → load into a fresh optimiser → continue equals the uninterrupted run, bit for
//! bit, for every optimiser (flat and per-tensor layouts, each kernel) and every wrapper; and a
//! state saved with one kernel loads with the other and continues the same trajectory.

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
        for (flat, kernel) in case.variants() {
            roundtrip(&format!("{} flat={flat} kernel={kernel}", case.id), case.lr, &|p| case.make(p, flat, kernel).unwrap(), case.wd);
        }
    }
}

/// Largest elementwise relative difference `|a−b| / max(|b|, 1e-6)`.
fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    max_rel_err(a, b, 1e-6).0
}

/// For every SGD / Adam / AdamW case, layout and kernel: 40 steps, `state()`, a fresh optimiser
/// with the *other* kernel (in either layout) loads it, `state()` gives back what was loaded bit
/// for bit, and 60 more steps follow the uninterrupted run of either kernel to 1e-5 relative
/// (the kernels round differently, so not bit for bit). Negative control: without the state the
/// continuation differs by far more than that.
#[test]
fn state_moves_between_kernels() {
    let grads = grad_values();
    let mut checked = 0;
    for case in cases().into_iter().filter(|c| c.with_kernel.is_some()) {
        let straight = |kernel: Kernel| {
            let mut o = case.make(make_params(&init_values(), case.wd), true, kernel).unwrap();
            run(o.as_mut(), case.lr, &grads, 0, STEPS)
        };
        let (ws, tf) = (straight(Kernel::Whetstone), straight(Kernel::TorchFused));
        for (save_flat, save_kernel) in case.variants() {
            let mut a = case.make(make_params(&init_values(), case.wd), save_flat, save_kernel).unwrap();
            let first = run(a.as_mut(), case.lr, &grads, 0, 40);
            let saved = a.state();
            let saved = OptimState { step: saved.step, tensors: saved.tensors.iter().map(|(n, t)| (n.clone(), t.copy())).collect() };
            let mid: Vec<f64> = first[first.len() - total()..].to_vec();
            let load_kernel = if save_kernel == Kernel::Whetstone { Kernel::TorchFused } else { Kernel::Whetstone };
            for load_flat in [true, false] {
                let id = format!("{}: saved flat={save_flat} kernel={save_kernel}, loaded flat={load_flat} kernel={load_kernel}", case.id);
                let mut b = case.make(make_params(&mid, case.wd), load_flat, load_kernel).unwrap();
                b.load_state(&saved).unwrap_or_else(|e| panic!("{id}: {e}"));
                let back = b.state();
                assert_eq!(back.step, saved.step, "{id}: step");
                assert_eq!(back.tensors.len(), saved.tensors.len(), "{id}: state entries");
                for (n, t) in &saved.tensors {
                    assert!(back.find(n).unwrap().equal(t), "{id}: `{n}` differs after load_state");
                }
                let rest = run(b.as_mut(), case.lr, &grads, 40, STEPS);
                let resumed: Vec<f64> = first.iter().copied().chain(rest).collect();
                let (e_ws, e_tf) = (rel_diff(&resumed, &ws), rel_diff(&resumed, &tf));
                assert!(e_ws <= 1e-5 && e_tf <= 1e-5, "{id}: resumed run differs from the uninterrupted ones by {e_ws:e} (whetstone) / {e_tf:e} (torch-fused)");
                checked += 1;
            }
            // Without the state (fresh moments / momentum from step 41), the run is different
            // (plain SGD has no state to lose).
            if saved.tensors.is_empty() {
                continue;
            }
            let mut fresh = case.make(make_params(&mid, case.wd), save_flat, load_kernel).unwrap();
            let rest = run(fresh.as_mut(), case.lr, &grads, 40, STEPS);
            let cold: Vec<f64> = first.iter().copied().chain(rest).collect();
            assert!(rel_diff(&cold, &ws) > 1e-3, "{}: a continuation without the state matches too; the comparison would be vacuous", case.id);
        }
    }
    assert_eq!(checked, 9 * 4 * 2);
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
