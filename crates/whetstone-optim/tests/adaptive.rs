//! The adaptive optimiser: exact resume, reduction to RAdam with decoupled weight decay,
//! convergence on small ill-conditioned problems with its adaptations inside their bounds (with
//! the default multiplier-only configuration and with β₁ adapting too), and the direction in
//! which β₁ and the multiplier move under oscillating and consistent gradients.

mod optim_common;

use optim_common::*;
use tch::{Kind, Tensor};
use whetstone_optim::*;

fn adaptive(p: Vec<Param>, c: AdaptiveConfig) -> Box<dyn Optimizer> {
    Box::new(Adaptive::new(p, c).unwrap())
}

/// The shipped defaults (multiplier only) and the earlier ones (β₁ adapting too).
fn configs() -> [(&'static str, AdaptiveConfig); 2] {
    [("default", AdaptiveConfig::default()), ("momentum-adaptive", AdaptiveConfig::momentum_adaptive())]
}

#[test]
fn resumes_bit_exactly() {
    for (_, config) in configs() {
        resumes_bit_exactly_with(config);
    }
}

fn resumes_bit_exactly_with(config: AdaptiveConfig) {
    let (lr, wd) = (0.01, 0.01);
    let grads = grad_values();
    let build = || adaptive(make_params(&init_values(), wd), config.clone());
    let mut a = build();
    let straight = run(a.as_mut(), lr, &grads, 0, STEPS);

    let mut b = build();
    let first = run(b.as_mut(), lr, &grads, 0, 40);
    let saved = b.state();
    let saved = OptimState { step: saved.step, tensors: saved.tensors.iter().map(|(n, t)| (n.clone(), t.copy())).collect() };
    drop(b);
    let mid: Vec<f64> = first[first.len() - total()..].to_vec();
    let mut c = adaptive(make_params(&mid, wd), config.clone());
    c.load_state(&saved).unwrap();
    let rest = run(c.as_mut(), lr, &grads, 40, STEPS);
    let resumed: Vec<f64> = first.into_iter().chain(rest).collect();
    assert!(straight.iter().zip(&resumed).all(|(x, y)| x.to_bits() == y.to_bits()), "resumed run differs");
    // The adaptation really moved, so the scalars' round trip was exercised.
    let s = c.state();
    let lm = s.find("encoder.layer.0.dense.weight.log_lr_mult").unwrap().double_value(&[0]);
    assert!(lm != 0.0);
    // The smoothed cosine that drives β₁ is tracked only when β₁ adapts.
    let ce = s.find("encoder.layer.0.dense.weight.cos_ema").unwrap().double_value(&[0]);
    assert_eq!(ce != 0.0, config.adapts_momentum(), "cos_ema {ce}");
}

#[test]
fn without_adaptation_it_is_radam_with_decoupled_decay() {
    let grads = grad_values();
    for (betas, eps, lr, wd) in [((0.9, 0.999), 1e-8, 0.01, 0.01), ((0.8, 0.99), 1e-4, 0.02, 0.1), ((0.95, 0.98), 1e-6, 0.005, 0.0)] {
        let mut ours = adaptive(make_params(&init_values(), wd), AdaptiveConfig::fixed(betas, eps));
        let mut radam = RAdam::with_layout(make_params(&init_values(), wd), RAdamConfig { betas, eps, decoupled_weight_decay: true }, false).unwrap();
        let a = run(ours.as_mut(), lr, &grads, 0, STEPS);
        let b = run(&mut radam, lr, &grads, 0, STEPS);
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f64::max);
        assert!(worst <= 1e-12, "betas {betas:?}: differs from RAdam by {worst:e}");
    }
}

/// Loss and (β₁, α) bounds check over `steps` full-batch steps of `loss_fn`.
fn minimise(c: AdaptiveConfig, params: Vec<Param>, lr: f64, steps: usize, loss_fn: &dyn Fn(&[Tensor]) -> Tensor) -> (f64, f64) {
    let names: Vec<String> = params.iter().map(|p| p.name.clone()).collect();
    let mut opt = Adaptive::new(params, c.clone()).unwrap();
    let ps = |o: &Adaptive| o.params().into_iter().map(Tensor::shallow_clone).collect::<Vec<_>>();
    let first = loss_fn(&ps(&opt)).double_value(&[]);
    for _ in 0..steps {
        opt.zero_grad();
        loss_fn(&ps(&opt)).backward();
        opt.step(lr).unwrap();
        for n in &names {
            let (b1, mult) = opt.adaptation(n).unwrap();
            assert!((c.beta1_floor()..=c.betas.0).contains(&b1), "{n}: beta1 {b1} out of bounds");
            assert!(mult >= 1.0 / c.max_lr_mult - 1e-12 && mult <= c.max_lr_mult + 1e-12, "{n}: lr multiplier {mult} out of bounds");
        }
    }
    (first, loss_fn(&ps(&opt)).double_value(&[]))
}

fn leaf(name: &str, t: Tensor) -> Param {
    Param { name: name.into(), tensor: t.set_requires_grad(true), weight_decay: 0.0 }
}

#[test]
fn converges_on_an_ill_conditioned_quadratic() {
    // f = ½ Σ hᵢ xᵢ² with curvatures from 1 to 1000 (condition number 1e3), over two tensors.
    let h1 = Tensor::logspace(0.0, 3.0, 10, 10.0, (Kind::Double, tch::Device::Cpu));
    let h2 = Tensor::logspace(3.0, 0.0, 6, 10.0, (Kind::Double, tch::Device::Cpu)).reshape([2, 3]);
    let f = |p: &[Tensor]| ((&p[0] * &p[0] * &h1).sum(Kind::Double) + (&p[1] * &p[1] * &h2).sum(Kind::Double)) * 0.5;
    for (name, c) in configs() {
        let params = vec![leaf("a", Tensor::ones([10], (Kind::Double, tch::Device::Cpu))), leaf("b", Tensor::ones([2, 3], (Kind::Double, tch::Device::Cpu)) * -1.0)];
        let (first, last) = minimise(c, params, 0.05, 300, &f);
        assert!(last < first / 100.0, "{name}: quadratic: {first} -> {last}");
    }
}

#[test]
fn converges_on_logistic_regression() {
    tch::manual_seed(3);
    let opts = (Kind::Double, tch::Device::Cpu);
    let x = Tensor::randn([256, 8], opts) * Tensor::logspace(-1.0, 1.0, 8, 10.0, opts);
    let w_true = Tensor::randn([8], opts);
    let y = x.matmul(&w_true).gt(0.0).to_kind(Kind::Double);
    let f = |p: &[Tensor]| (x.matmul(&p[0]) + &p[1]).binary_cross_entropy_with_logits::<Tensor>(&y, None, None, tch::Reduction::Mean);
    for (name, c) in configs() {
        let params = vec![leaf("w", Tensor::zeros([8], opts)), leaf("b", Tensor::zeros([1], opts))];
        let (first, last) = minimise(c, params, 0.05, 200, &f);
        assert!(last < first / 4.0, "{name}: logistic regression: {first} -> {last}");
    }
}

/// Feed the gradient sequence `g(t)` for `steps` steps; return β₁ and α after each step.
fn trace(opt: &mut Adaptive, steps: std::ops::Range<usize>, g: &dyn Fn(usize) -> Tensor) -> Vec<(f64, f64)> {
    steps
        .map(|t| {
            opt.zero_grad();
            let p = opt.params()[0].shallow_clone();
            (&p * g(t)).sum(Kind::Double).backward();
            opt.step(1e-3).unwrap();
            opt.adaptation("w").unwrap()
        })
        .collect()
}

#[test]
fn momentum_falls_under_oscillation_and_recovers_under_agreement() {
    let opts = (Kind::Double, tch::Device::Cpu);
    let dir = Tensor::from_slice(&[1.0, -2.0, 0.5, 3.0, -1.0]);
    let c = AdaptiveConfig::momentum_adaptive();
    let mut opt = Adaptive::new(vec![leaf("w", Tensor::zeros([5], opts))], c.clone()).unwrap();
    let flip = trace(&mut opt, 0..30, &|t| &dir * if t % 2 == 0 { 1.0 } else { -1.0 });
    let (b_osc, a_osc) = *flip.last().unwrap();
    assert!(b_osc < c.betas.0 - 0.2, "beta1 under oscillation stayed at {b_osc}");
    assert!(a_osc < 1.0, "lr multiplier under oscillation rose to {a_osc}");
    let agree = trace(&mut opt, 30..60, &|_| dir.shallow_clone());
    let (b_agree, a_agree) = *agree.last().unwrap();
    assert!(b_agree > b_osc + 0.2, "beta1 did not recover: {b_osc} -> {b_agree}");
    assert!((b_agree - c.betas.0).abs() < 1e-12, "beta1 after agreement {b_agree}");
    assert!(a_agree > a_osc, "lr multiplier did not rise under agreement: {a_osc} -> {a_agree}");
    // β₁ moves monotonically in each phase once the smoothed cosine has turned.
    assert!(flip.windows(2).skip(2).all(|w| w[1].0 <= w[0].0 + 1e-12));
    assert!(agree.windows(2).skip(3).all(|w| w[1].0 >= w[0].0 - 1e-12));
}

#[test]
fn by_default_only_the_learning_rate_adapts() {
    // The same oscillating then agreeing gradients as above: β₁ stays at β₁max throughout,
    // while the multiplier still falls under oscillation and rises under agreement.
    let opts = (Kind::Double, tch::Device::Cpu);
    let dir = Tensor::from_slice(&[1.0, -2.0, 0.5, 3.0, -1.0]);
    let c = AdaptiveConfig::default();
    assert!(!c.adapts_momentum());
    let mut opt = Adaptive::new(vec![leaf("w", Tensor::zeros([5], opts))], c.clone()).unwrap();
    let flip = trace(&mut opt, 0..30, &|t| &dir * if t % 2 == 0 { 1.0 } else { -1.0 });
    let agree = trace(&mut opt, 30..60, &|_| dir.shallow_clone());
    assert!(flip.iter().chain(&agree).all(|(b1, _)| *b1 == c.betas.0), "beta1 moved: {flip:?}");
    let (a_osc, a_agree) = (flip.last().unwrap().1, agree.last().unwrap().1);
    assert!(a_osc < 1.0 && a_agree > a_osc, "lr multiplier {a_osc} -> {a_agree}");
}

#[test]
fn per_group_betas_keep_the_momentum_adaptation_as_it_was() {
    // A group that sets its own β₁max: the adaptation that was off stays off (β₁min unset
    // follows it), one that was on stays on within the new bound.
    let off = Algorithm::Adaptive(AdaptiveConfig::default()).with_betas((0.95, 0.999)).unwrap();
    let on = Algorithm::Adaptive(AdaptiveConfig::momentum_adaptive()).with_betas((0.4, 0.999)).unwrap();
    match (off, on) {
        (Algorithm::Adaptive(off), Algorithm::Adaptive(on)) => {
            assert_eq!((off.beta1_min, off.beta1_floor(), off.adapts_momentum()), (None, 0.95, false));
            assert_eq!((on.beta1_min, on.betas.0, on.adapts_momentum()), (Some(0.4), 0.4, false));
            let kept = Algorithm::Adaptive(AdaptiveConfig::momentum_adaptive()).with_betas((0.95, 0.999)).unwrap();
            assert!(matches!(kept, Algorithm::Adaptive(k) if k.beta1_min == Some(0.5) && k.adapts_momentum()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_recipe_that_sets_betas_does_not_turn_the_momentum_adaptation_on() {
    let parse = |t: &str| match toml::from_str::<OptimConfig>(t).unwrap().algorithm {
        Algorithm::Adaptive(a) => a,
        other => panic!("parsed as {other:?}"),
    };
    let a = parse("kind = \"adaptive\"\nbetas = [0.95, 0.999]");
    assert!(!a.adapts_momentum() && a.beta1_floor() == 0.95, "{a:?}");
    let b = parse("kind = \"adaptive\"\nbetas = [0.95, 0.999]\nbeta1_min = 0.5");
    assert!(b.adapts_momentum() && b.beta1_floor() == 0.5, "{b:?}");
    // Unset stays unset through a recipe written back (a run folder's copy), set stays set.
    for text in ["kind = \"adaptive\"\nbetas = [0.95, 0.999]", "kind = \"adaptive\"\nbeta1_min = 0.5"] {
        let c: OptimConfig = toml::from_str(text).unwrap();
        let back: OptimConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{c:?}"));
    }
    // Out of range is refused when the optimiser is built.
    let bad: OptimConfig = toml::from_str("kind = \"adaptive\"\nbeta1_min = 0.95").unwrap();
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _l = tch::nn::linear(vs.root() / "fc", 3, 2, Default::default());
    let err = bad.build(&vs).err().expect("beta1_min above betas.0 must be refused").to_string();
    assert!(err.contains("beta1_min"), "{err}");
}

#[test]
fn recipe_kind_adaptive_builds() {
    let c: OptimConfig = toml::from_str("kind = \"adaptive\"\nlr = 1e-3\nhyper_lr = 0.05\nbeta1_min = 0.6").unwrap();
    match &c.algorithm {
        Algorithm::Adaptive(a) => assert_eq!((a.hyper_lr, a.beta1_min), (0.05, Some(0.6))),
        other => panic!("parsed as {other:?}"),
    }
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _l = tch::nn::linear(vs.root() / "fc", 3, 2, Default::default());
    let mut opt = c.build(&vs).unwrap();
    _l.ws.sum(Kind::Float).backward();
    opt.step(1e-3).unwrap();
    assert!(opt.state().tensors.iter().any(|(n, _)| n == "fc.weight.log_lr_mult"));
}

/// A gradient with a weak but consistent component along `dir` under strong deterministic
/// "noise": the cosine with the previous step is small and positive, as in minibatch training.
fn weak_signal(dir: &Tensor, t: usize) -> Tensor {
    let n = dir.size()[0];
    let noise = Tensor::arange(n, (Kind::Double, tch::Device::Cpu)).f_mul_scalar(0.7 + 1.3 * t as f64).unwrap().sin();
    dir * 0.15 + noise
}

#[test]
fn normalised_hypergradient_corrects_the_lr_where_the_raw_cosine_cannot() {
    let opts = (Kind::Double, tch::Device::Cpu);
    let dir = Tensor::ones([400], opts);
    let run = |hyper_norm: bool, hyper_lr: f64| {
        let c = AdaptiveConfig { hyper_norm, hyper_lr, ..Default::default() };
        let mut opt = Adaptive::new(vec![leaf("w", Tensor::zeros([400], opts))], c).unwrap();
        trace(&mut opt, 0..60, &|t| weak_signal(&dir, t)).last().unwrap().1
    };
    let (raw, normed) = (run(false, 0.02), run(true, 0.05));
    // The signal is consistent, so the multiplier must grow; only the normalised version grows
    // it by a useful factor within 60 steps (the raw cosine is a few hundredths).
    assert!(raw > 1.0 && raw < 1.2, "raw multiplier {raw}");
    assert!(normed > 4.0, "normalised multiplier only reached {normed}");
    assert!(normed <= AdaptiveConfig::default().max_lr_mult + 1e-9);
}

#[test]
fn agreement_rule_keeps_low_momentum_until_directions_agree() {
    let opts = (Kind::Double, tch::Device::Cpu);
    let dir = Tensor::from_slice(&[1.0, -2.0, 0.5, 3.0, -1.0]);
    let c = AdaptiveConfig { momentum_rule: MomentumRule::Agreement, ..AdaptiveConfig::momentum_adaptive() };
    let mut opt = Adaptive::new(vec![leaf("w", Tensor::zeros([5], opts))], c.clone()).unwrap();
    let flip = trace(&mut opt, 0..20, &|t| &dir * if t % 2 == 0 { 1.0 } else { -1.0 });
    assert!((flip.last().unwrap().0 - c.beta1_floor()).abs() < 1e-12, "beta1 under oscillation {:?}", flip.last());
    let agree = trace(&mut opt, 20..60, &|_| dir.shallow_clone());
    assert!((agree.last().unwrap().0 - c.betas.0).abs() < 1e-12, "beta1 after agreement {:?}", agree.last());
    // The oscillation rule instead keeps the full β₁ for uncorrelated (zero-cosine) gradients.
    let d = AdaptiveConfig::momentum_adaptive();
    assert_eq!((d.beta1_for(0.0), c.beta1_for(0.0)), (d.betas.0, c.beta1_floor()));
}

#[test]
fn nesterov_looks_the_momentum_one_step_ahead() {
    // Adaptations off, torch's early SGD steps: step 2 is plain arithmetic on two gradients.
    let opts = (Kind::Double, tch::Device::Cpu);
    let c = AdaptiveConfig { nesterov: true, ..AdaptiveConfig::fixed((0.9, 0.999), 1e-8) };
    let mut opt = Adaptive::new(vec![leaf("w", Tensor::zeros([2], opts))], c).unwrap();
    let gs = [Tensor::from_slice(&[1.0, -2.0]), Tensor::from_slice(&[3.0, 0.5])];
    let lr = 0.1;
    let mut expected = [0.0f64; 2];
    let (b1, mut prod, mut m) = (0.9, 1.0, [0.0f64; 2]);
    for g in &gs {
        opt.zero_grad();
        let p = opt.params()[0].shallow_clone();
        (&p * g).sum(Kind::Double).backward();
        opt.step(lr).unwrap();
        let g: Vec<f64> = Vec::try_from(g).unwrap();
        prod *= b1;
        for i in 0..2 {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            // ρₜ ≤ 5 for β₂ = 0.999 at these steps, so the step is the (Nesterov) momentum itself.
            expected[i] -= lr * (b1 * m[i] / (1.0 - prod * b1) + (1.0 - b1) * g[i] / (1.0 - prod));
        }
    }
    let got: Vec<f64> = Vec::try_from(&opt.params()[0].detach()).unwrap();
    for i in 0..2 {
        assert!((got[i] - expected[i]).abs() < 1e-12, "element {i}: {} vs {}", got[i], expected[i]);
    }
}
