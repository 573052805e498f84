//! Lookahead against a hand computation, accumulation, non-finite skipping, clipping and the
//! flat-buffer aliasing.

mod optim_common;

use optim_common::*;
use tch::{nn, nn::Module, Device, Kind, Tensor};
use whetstone_optim::*;

#[test]
fn lookahead_matches_hand_computation() {
    // Plain SGD, lr 0.1, k = 2, α = 0.5 on one scalar with gradients 1, 2, 3, 4:
    // fast: 1 → 0.9 → 0.7; sync: φ = 1 + 0.5(0.7 − 1) = 0.85, θ = 0.85;
    // fast: 0.85 − 0.3 = 0.55 → 0.15; sync: φ = 0.85 + 0.5(0.15 − 0.85) = 0.5.
    let p = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
    let params = vec![Param { name: "w".into(), tensor: p.shallow_clone(), weight_decay: 0.0 }];
    let mut opt = Lookahead::new(Sgd::new(params, SgdConfig { momentum: 0.0, ..Default::default() }).unwrap(), LookaheadConfig { k: 2, alpha: 0.5 }).unwrap();
    let mut seen = Vec::new();
    for g in [1.0, 2.0, 3.0, 4.0] {
        opt.zero_grad();
        (&p * g).sum(Kind::Double).backward();
        opt.step(0.1).unwrap();
        seen.push(p.double_value(&[0]));
    }
    let want = [0.9, 0.85, 0.55, 0.5];
    for (s, w) in seen.iter().zip(want) {
        assert!((s - w).abs() < 1e-12, "lookahead trajectory {seen:?}, expected {want:?}");
    }
    assert!((opt.slow_weights()[0].double_value(&[0]) - 0.5).abs() < 1e-12);
}

#[test]
fn accumulate_steps_every_k_calls_on_the_mean_gradient() {
    let grads = grad_values();
    // Reference: SGD on the mean of gradients t and t+1.
    let mut plain = Sgd::new(make_params(&init_values(), 0.0), SgdConfig { momentum: 0.0, ..Default::default() }).unwrap();
    let mut acc = Accumulate::new(Sgd::new(make_params(&init_values(), 0.0), SgdConfig { momentum: 0.0, ..Default::default() }).unwrap(), 2).unwrap();
    let n = total();
    for step in 0..5 {
        plain.zero_grad();
        let ps: Vec<Tensor> = plain.params().into_iter().map(Tensor::shallow_clone).collect();
        let mean: Vec<f64> = (0..n).map(|i| 0.5 * (grads[2 * step * n + i] + grads[(2 * step + 1) * n + i])).collect();
        backward(&ps.iter().collect::<Vec<_>>(), &mean, 0);
        plain.step(0.1).unwrap();
        for micro in 0..2 {
            acc.zero_grad();
            let qs: Vec<Tensor> = acc.params().into_iter().map(Tensor::shallow_clone).collect();
            backward(&qs.iter().collect::<Vec<_>>(), &grads, 2 * step + micro);
            acc.step(0.1).unwrap();
        }
    }
    let (a, b) = (concat(&plain.params()), concat(&acc.params()));
    let err = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(err < 1e-12, "accumulated SGD differs from SGD on the mean gradient by {err}");
    assert_eq!(acc.state().step, 5);
}

#[test]
fn nonfinite_gradients_are_skipped_and_counted() {
    let mut opt = SkipNonFinite::new(AdamW::new(make_params(&init_values(), 0.01), AdamWConfig::default()).unwrap());
    let before = concat(&opt.params());
    let mut bad = grad_values();
    bad[3] = f64::NAN;
    bad[total() + 5] = f64::INFINITY;
    for t in 0..3 {
        opt.zero_grad();
        let ps: Vec<Tensor> = opt.params().into_iter().map(Tensor::shallow_clone).collect();
        backward(&ps.iter().collect::<Vec<_>>(), &bad, t);
        opt.step(1e-2).unwrap();
        if t < 2 {
            assert_eq!(concat(&opt.params()), before, "a skipped step changed the parameters");
        }
    }
    assert_eq!(opt.skipped_steps(), 2);
    assert_eq!(opt.state().step, 1);
    assert!(concat(&opt.params()).iter().all(|x| x.is_finite()));
}

#[test]
fn clip_by_value_and_norm() {
    let p = Tensor::from_slice(&[1.0f64, 2.0, 3.0]).set_requires_grad(true);
    (&p * Tensor::from_slice(&[-5.0f64, 0.5, 3.0])).sum(Kind::Double).backward();
    clip_grad_value(&[&p], 1.0).unwrap();
    assert_eq!(Vec::<f64>::try_from(&p.grad()).unwrap(), vec![-1.0, 0.5, 1.0]);
    let norm = clip_grad_norm(&[&p], 0.75).unwrap();
    assert!((norm - 1.5).abs() < 1e-6);
    assert!((p.grad().norm().double_value(&[]) - 0.75).abs() < 1e-5);
}

/// The clipping transforms inside a chain, against a hand computation: gradients (3, 4) have
/// norm 5; clipped to norm 1 they are (0.6, 0.8), clamped to 0.5 they are (0.5, 0.5); under the
/// limit they pass unchanged. One plain step at lr 0.1 from (1, 1) shows the update.
#[test]
fn clipping_transforms_in_a_chain_match_hand_computation() {
    use whetstone_optim::transform::{chain, clip_by_global_norm, clip_by_value, scale_by_learning_rate, Transform};
    let cases: [(fn() -> Box<dyn Transform>, [f64; 2]); 4] = [
        (|| clip_by_global_norm(1.0), [0.6, 0.8]),
        (|| clip_by_global_norm(10.0), [3.0, 4.0]),
        (|| clip_by_value(0.5), [0.5, 0.5]),
        (|| clip_by_value(5.0), [3.0, 4.0]),
    ];
    for (i, (clip, want)) in cases.into_iter().enumerate() {
        for flat in [false, true] {
            let p = Tensor::from_slice(&[1.0f32, 1.0]).set_requires_grad(true);
            let params = vec![Param { name: "w".into(), tensor: p.shallow_clone(), weight_decay: 0.0 }];
            let mut opt = ChainOptimizer::new(params, chain(vec![clip(), scale_by_learning_rate()]), flat).unwrap();
            opt.zero_grad();
            (&p * Tensor::from_slice(&[3.0f32, 4.0])).sum(Kind::Float).backward();
            opt.step(0.1).unwrap();
            let got = Vec::<f64>::try_from(&opt.params()[0].detach().to_kind(Kind::Double)).unwrap();
            for (g, w) in got.iter().zip(want) {
                assert!((g - (1.0 - 0.1 * w)).abs() < 1e-5, "case {i}, flat {flat}: {got:?}, expected 1 − 0.1 × {want:?}");
            }
        }
    }
}

#[test]
fn flat_buffers_alias_variables_and_gradients() {
    let vs = nn::VarStore::new(Device::Cpu);
    let l1 = nn::linear(vs.root() / "a", 3, 4, Default::default());
    let l2 = nn::linear(vs.root() / "b", 4, 2, Default::default());
    // Fixed positive weights keep every ReLU unit alive, so the gradient checks
    // below do not depend on the random initialisation.
    tch::no_grad(|| {
        for (i, mut v) in vs.trainable_variables().into_iter().enumerate() {
            let n = v.numel() as i64;
            let vals = Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.05 + 0.1 * (i as f64 + 1.0);
            v.copy_(&vals.reshape(v.size()));
        }
    });
    let mut opt = AdamW::new(named_params(&vs, 0.01, NO_DECAY), AdamWConfig::default()).unwrap();
    assert!(opt.inner().is_flat());
    for v in vs.trainable_variables() {
        assert!(v.requires_grad(), "rebinding lost requires_grad");
        assert!(v.grad().defined());
    }
    let x = Tensor::ones([5, 3], (Kind::Float, Device::Cpu));
    let before = l1.ws.copy();
    for _ in 0..3 {
        opt.zero_grad();
        l2.forward(&l1.forward(&x).relu()).sum(Kind::Float).backward();
        assert!(l1.ws.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0, "gradient did not reach the flat buffer");
        opt.step(1e-2).unwrap();
    }
    assert!((l1.ws.copy() - before).abs().max().double_value(&[]) > 1e-3, "the layer's weights did not move");
    // The model's own handle and the VarStore's see the same storage.
    let vars = vs.variables();
    assert_eq!(vars["a.weight"].data_ptr(), l1.ws.data_ptr());
    // Replacing a variable's storage is detected instead of silently training a copy.
    let mut w = vars["b.weight"].shallow_clone();
    tch::no_grad(|| w.set_data(&w.detach().copy()));
    assert!(opt.step(1e-2).is_err());
}

#[test]
fn recipe_round_trips_and_old_recipes_parse() {
    let old = "kind = \"adamw\"\nlr = 3e-4\nweight_decay = 0.05\nbetas = [0.9, 0.98]\neps = 1e-6";
    let c: OptimConfig = toml::from_str(old).unwrap();
    assert_eq!(c.lr, 3e-4);
    assert_eq!(c.algorithm, Algorithm::Adamw(AdamWConfig { betas: (0.9, 0.98), eps: 1e-6, amsgrad: false }));
    let sgd: OptimConfig = toml::from_str("kind = \"sgd\"\nmomentum = 0.8\ndampening = 0.1\nnesterov = false").unwrap();
    assert!(matches!(sgd.algorithm, Algorithm::Sgd(_)));
    let full = "kind = \"schedulefree-adamw\"\nlr = 1e-3\nlayer_decay = 0.9\nskip_nonfinite = true\nlookahead = { k = 5, alpha = 0.5 }\ngroups = [{ pattern = \"classifier.*\", lr_scale = 10.0 }]";
    let c: OptimConfig = toml::from_str(full).unwrap();
    let back: OptimConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(c, back);
    // Every given key survives re-serialisation (the trainer's unknown-key check relies on it).
    let given: toml::Table = toml::from_str(full).unwrap();
    let known = toml::Value::try_from(&c).unwrap();
    for k in given.keys() {
        assert!(known.get(k).is_some(), "key `{k}` does not round-trip");
    }
    for kind in ["sgd", "adam", "adamw", "nadam", "radam", "adagrad", "rmsprop", "adamax", "adabelief", "lion", "lamb", "adafactor", "schedulefree-adamw"] {
        let c: OptimConfig = toml::from_str(&format!("kind = \"{kind}\"")).unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let _l = nn::linear(vs.root() / "encoder" / "layer" / 0, 3, 2, Default::default());
        let mut opt = OptimConfig { layer_decay: Some(0.9), lookahead: Some(Default::default()), skip_nonfinite: true, ..c }.build(&vs).unwrap();
        _l.ws.sum(Kind::Float).backward();
        opt.step(1e-3).unwrap();
    }
}

#[test]
fn schedule_free_eval_and_train_swap() {
    let mut opt = ScheduleFreeAdamW::new(make_params(&init_values(), 0.0), Default::default()).unwrap();
    let grads = grad_values();
    run(&mut opt, 0.01, &grads, 0, 10);
    let y = concat(&opt.params());
    opt.eval_mode().unwrap();
    let x = concat(&opt.params());
    let want_x = concat(&opt.eval_params().iter().collect::<Vec<_>>());
    assert_eq!(x, want_x);
    assert_ne!(x, y);
    assert!(opt.step(0.01).is_err(), "stepping in eval mode must fail");
    opt.train_mode().unwrap();
    assert_eq!(concat(&opt.params()), y, "train_mode must restore y exactly");
}
