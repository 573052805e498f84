//! Consistency regularisation (R-Drop, mixup, cutoff) against hand computations on a tiny
//! model, composed with adversarial training, and through the one loop (deterministic,
//! bit-identical through kill and resume).

use rand::seq::SliceRandom;
use tch::{Device, Kind, Tensor};
use whetstone_data::BucketedSource;
use whetstone_optim::OptimConfig;
use whetstone_train::adversarial::{AdversarialConfig, FgmConfig};
use whetstone_train::consistency::{beta_sample, symmetric_kl, Cutoff, CutoffConfig, CutoffKind, Mixup, MixupConfig, MixupOn, RDrop, RDropConfig, RegularizeConfig, Smart, SmartConfig};
use whetstone_train::{CrossEntropy, Objective, Outcome, Silent, StepContext, TrainConfig, Trainer};

mod common {
    pub mod tiny_classifier;
}
use common::tiny_classifier::{batch, build, data, serial, textcnn, transformer_with_dropout as transformer};

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let t = t.to_kind(Kind::Double);
    (0..t.size()[0]).map(|i| Vec::<f64>::try_from(t.get(i)).unwrap()).collect()
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// ½(KL(p‖q) + KL(q‖p)) per row, averaged over rows, in f64.
fn hand_symmetric_kl(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (rows(a), rows(b));
    let kl = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(p, q)| p * (p / q).ln()).sum::<f64>();
    let total: f64 = a.iter().zip(&b).map(|(x, y)| {
        let (p, q) = (softmax(x), softmax(y));
        0.5 * (kl(&p, &q) + kl(&q, &p))
    }).sum();
    total / a.len() as f64
}

fn ce(logits: &Tensor, labels: &Tensor) -> f64 {
    logits.cross_entropy_for_logits(labels).double_value(&[])
}

#[test]
fn the_rdrop_kl_term_matches_the_hand_formula() {
    let _g = serial();
    let a = Tensor::from_slice(&[1.0f32, -0.5, 2.0, 0.3, 0.0, 0.0, -1.0, 4.0, 0.5]).view([3, 3]);
    let b = Tensor::from_slice(&[0.2f32, 0.1, 1.0, -0.3, 0.4, 0.0, 2.0, 1.0, -0.5]).view([3, 3]);
    let got = symmetric_kl(&a, &b).unwrap().double_value(&[]);
    assert!((got - hand_symmetric_kl(&a, &b)).abs() < 1e-6, "{got} vs {}", hand_symmetric_kl(&a, &b));
    assert!(symmetric_kl(&a, &a).unwrap().double_value(&[]).abs() < 1e-7);
    // The objective: two dropout passes, CE averaged, α·symmetric KL.
    let (vs, model) = build(&transformer(0.3), 2);
    let b = batch();
    let alpha = 2.5;
    let mut rdrop = RDrop::new(CrossEntropy::default(), RDropConfig { alpha }).unwrap();
    let mut cx = StepContext::new(model.as_ref(), &vs, 0, 0, Device::Cpu, 3);
    tch::manual_seed(17);
    let out = rdrop.backward(&mut cx, &b, 1.0).unwrap();
    tch::manual_seed(17);
    let z1 = model.forward_t(&b.input_ids, &b.attention_mask, true).unwrap();
    let z2 = model.forward_t(&b.input_ids, &b.attention_mask, true).unwrap();
    assert!(!z1.equal(&z2), "the two passes must use different dropout masks");
    let kl = hand_symmetric_kl(&z1, &z2);
    let ce_mean = 0.5 * (ce(&z1, &b.labels) + ce(&z2, &b.labels));
    assert!((out.value - (ce_mean + alpha * kl)).abs() < 1e-5, "{} vs {}", out.value, ce_mean + alpha * kl);
    let term = |n: &str| out.terms.iter().find(|(k, _)| k == n).unwrap().1;
    assert!((term("rdrop_kl") - kl).abs() < 1e-6 && kl > 0.0);
    assert!((term("ce") - ce_mean).abs() < 1e-6);
}

#[test]
fn mixup_mixes_embeddings_and_losses_with_lambda_from_the_step_stream() {
    let _g = serial();
    let (vs, model) = build(&transformer(0.0), 4);
    let b = batch();
    let alpha = 0.4;
    let mut mixup = Mixup::new(CrossEntropy::default(), MixupConfig { alpha, on: MixupOn::Embeddings }, model.as_ref()).unwrap();
    let mut cx = StepContext::new(model.as_ref(), &vs, 5, 0, Device::Cpu, 21);
    let loss = mixup.loss(&mut cx, &b).unwrap().double_value(&[]);
    // The same draws from a twin context of the same seed.
    let mut twin = StepContext::new(model.as_ref(), &vs, 5, 0, Device::Cpu, 21);
    let lambda = beta_sample(twin.rng(), alpha);
    let mut perm: Vec<i64> = (0..6).collect();
    perm.shuffle(twin.rng());
    assert_eq!(mixup.last_lambda(), lambda);
    let perm = Tensor::from_slice(&perm);
    let emb = model.embedding_input().unwrap();
    let e = emb.embed(&b.input_ids, true).unwrap();
    let mixed = &e * lambda + e.index_select(0, &perm) * (1.0 - lambda);
    let mask = b.attention_mask.maximum(&b.attention_mask.index_select(0, &perm));
    let z = emb.forward_embedded(&mixed, &mask, true).unwrap();
    let want = lambda * ce(&z, &b.labels) + (1.0 - lambda) * ce(&z, &b.labels.index_select(0, &perm));
    assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    // Mixed final states through the head, for the Transformer.
    let mut hidden = Mixup::new(CrossEntropy::default(), MixupConfig { alpha, on: MixupOn::Hidden }, model.as_ref()).unwrap();
    assert!(hidden.loss(&mut StepContext::new(model.as_ref(), &vs, 5, 0, Device::Cpu, 21), &b).unwrap().double_value(&[]).is_finite());
    // TextCNN has no per-layer outputs: a clear error when the objective is built.
    let (_, cnn) = build(&textcnn(), 1);
    let e = Mixup::new(CrossEntropy::default(), MixupConfig { alpha, on: MixupOn::Hidden }, cnn.as_ref()).err().unwrap().to_string();
    assert!(e.contains("mixup on hidden states") && e.contains("textcnn"), "{e}");
}

#[test]
fn beta_samples_have_the_beta_mean_and_variance() {
    let (vs, model) = build(&textcnn(), 1);
    let mut cx = StepContext::new(model.as_ref(), &vs, 0, 0, Device::Cpu, 1);
    for a in [0.2, 1.0, 4.0] {
        let xs: Vec<f64> = (0..20000).map(|_| beta_sample(cx.rng(), a)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
        assert!((mean - 0.5).abs() < 0.01, "Beta({a},{a}) mean {mean}");
        let want = 1.0 / (4.0 * (2.0 * a + 1.0));
        assert!((var - want).abs() < 0.05 * want + 0.002, "Beta({a},{a}) variance {var}, expected {want}");
    }
}

#[test]
fn cutoff_cuts_what_it_says_and_its_loss_is_ce_plus_cut_ce_plus_js() {
    let _g = serial();
    let (vs, model) = build(&transformer(0.0), 6);
    let b = batch();
    let run = |c: CutoffConfig| {
        let mut cut = Cutoff::new(CrossEntropy::default(), c, model.as_ref()).unwrap();
        let mut cx = StepContext::new(model.as_ref(), &vs, 0, 0, Device::Cpu, 9);
        let out = cut.backward(&mut cx, &b, 1.0).unwrap();
        let term = |n: &str| out.terms.iter().find(|(k, _)| k == n).unwrap().1;
        (out.value, term("ce"), term("cutoff_ce"), term("cutoff_js"))
    };
    let clean = ce(&model.forward_t(&b.input_ids, &b.attention_mask, true).unwrap(), &b.labels);
    // A ratio too small to cut a single token of these short sentences leaves the view clean.
    let (v, c, cc, js) = run(CutoffConfig { kind: CutoffKind::Token, ratio: 0.05, ce_weight: 1.0, js_weight: 1.0 });
    assert!((c - clean).abs() < 1e-6 && (cc - clean).abs() < 1e-6 && js.abs() < 1e-7 && (v - 2.0 * clean).abs() < 1e-5);
    for kind in [CutoffKind::Token, CutoffKind::Span, CutoffKind::Feature] {
        let (v, c, cc, js) = run(CutoffConfig { kind, ratio: 0.5, ce_weight: 0.7, js_weight: 2.0 });
        assert!((c - clean).abs() < 1e-6, "{kind:?}");
        assert!((cc - clean).abs() > 1e-4 && js > 0.0, "{kind:?}: nothing was cut");
        assert!((v - (c + 0.7 * cc + 2.0 * js)).abs() < 1e-5, "{kind:?}");
        assert_eq!(run(CutoffConfig { kind, ratio: 0.5, ce_weight: 0.7, js_weight: 2.0 }).0, v, "{kind:?} is not deterministic");
    }
}

#[test]
fn bad_settings_are_clear_errors_naming_the_field_and_the_method() {
    let cases = [
        ("method = \"rdrop\"\nalpha = 0.0", "regularize.alpha", "rdrop"),
        ("method = \"mixup\"\nalpha = -1.0", "regularize.alpha", "mixup"),
        ("method = \"cutoff\"\nratio = 1.0", "regularize.ratio", "cutoff"),
        ("method = \"cutoff\"\nratio = 0.0", "regularize.ratio", "cutoff"),
        ("method = \"cutoff\"\njs_weight = -1.0", "regularize.js_weight", "cutoff"),
        ("method = \"smart\"\nsteps = 0", "regularize.steps", "smart"),
        ("method = \"smart\"\nnoise_std = 0.0", "regularize.noise_std", "smart"),
    ];
    for (text, field, method) in cases {
        let e = toml::from_str::<RegularizeConfig>(text).unwrap().validate().unwrap_err().to_string();
        assert!(e.contains(field) && e.contains(method), "{text}: {e}");
    }
    assert!(toml::from_str::<RegularizeConfig>("method = \"rdrop\"\nbeta = 1.0").is_err());
    assert!(toml::from_str::<RegularizeConfig>("method = \"mixup\"\non = \"logits\"").is_err());
    assert_eq!(toml::from_str::<RegularizeConfig>("method = \"cutoff\"").unwrap(), RegularizeConfig::Cutoff(CutoffConfig::default()));
}

fn fit(reg: &RegularizeConfig, adv: Option<&AdversarialConfig>, dir: &std::path::Path, stop_after: u64, resume: bool, init_seed: i64) -> (Vec<(String, Tensor)>, Outcome) {
    let (vs, m) = build(&textcnn(), init_seed);
    let train = data(48);
    let valid = data(12);
    let mut objective = reg.build(CrossEntropy::default(), m.as_ref()).unwrap();
    if let Some(a) = adv {
        objective = a.wrap(objective, m.as_ref()).unwrap();
    }
    let optim = OptimConfig::default().build(&vs).unwrap();
    let source = BucketedSource::new(&train, 8, 2);
    let config = TrainConfig { epochs: 2, batch_size: 8, eval_every: 3, checkpoint_every: 2, log_every: 1, bucket_factor: 2, ..Default::default() };
    let mut t = Trainer::new(m.as_ref(), &vs, optim, 3e-3, dir).objective(objective).config(config).seed(8).observer(Silent).stop_after(stop_after);
    let out = t.fit(&source, &valid, resume).unwrap().outcome;
    drop(t);
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    (v, out)
}

#[test]
fn every_method_alone_and_under_fgm_is_deterministic_and_resumes_bit_identically() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let fgm = AdversarialConfig::Fgm(FgmConfig { epsilon: 0.5 });
    let methods = [
        RegularizeConfig::Rdrop(RDropConfig::default()),
        RegularizeConfig::Mixup(MixupConfig::default()),
        RegularizeConfig::Cutoff(CutoffConfig::default()),
        RegularizeConfig::Smart(SmartConfig::default()),
    ];
    for (i, reg) in methods.iter().enumerate() {
        for adv in [None, Some(&fgm)] {
            let what = format!("{}{}", reg.name(), if adv.is_some() { " under FGM" } else { "" });
            let dir = |s: &str| tmp.path().join(format!("{i}-{}-{s}", adv.is_some()));
            let (a, out) = fit(reg, adv, &dir("a"), 0, false, 1);
            assert_eq!(out, Outcome::Finished);
            let (b, _) = fit(reg, adv, &dir("b"), 0, false, 1);
            assert!(a.iter().zip(&b).all(|((_, x), (_, y))| x.equal(y)), "{what}: not deterministic");
            let (_, out) = fit(reg, adv, &dir("k"), 5, false, 1);
            assert_eq!(out, Outcome::Interrupted);
            let (r, out) = fit(reg, adv, &dir("k"), 0, true, 77);
            assert_eq!(out, Outcome::Finished);
            assert!(a.iter().zip(&r).all(|((_, x), (_, y))| x.equal(y)), "{what}: killed and resumed differs");
        }
    }
}

/// KL(softmax(target) ‖ softmax(input)) per row, averaged, in f64.
fn hand_kl(input: &Tensor, target: &Tensor) -> f64 {
    let (a, b) = (rows(input), rows(target));
    a.iter().zip(&b).map(|(x, y)| {
        let (q, p) = (softmax(x), softmax(y));
        p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum::<f64>()
    }).sum::<f64>() / a.len() as f64
}

#[test]
fn smart_regularises_with_the_symmetric_kl_at_an_ascended_perturbation() {
    let _g = serial();
    let (vs, model) = build(&transformer(0.0), 8);
    let b = batch();
    let c = SmartConfig { weight: 2.0, steps: 2, step_size: 0.5, noise_std: 0.01, epsilon: 1e-6 };
    let mut smart = Smart::new(CrossEntropy::default(), c.clone(), model.as_ref()).unwrap();
    let mut cx = StepContext::new(model.as_ref(), &vs, 0, 0, Device::Cpu, 1);
    tch::manual_seed(31);
    let out = smart.backward(&mut cx, &b, 1.0).unwrap();
    // By hand, from the same draw of torch's generator.
    tch::manual_seed(31);
    let emb = model.embedding_input().unwrap();
    let m = b.attention_mask.to_kind(Kind::Float).unsqueeze(-1);
    let e = emb.embed(&b.input_ids, true).unwrap().detach();
    let z = emb.forward_embedded(&e, &b.attention_mask, true).unwrap().detach();
    let mut noise = e.randn_like() * c.noise_std * &m;
    for _ in 0..c.steps {
        let d = noise.detach().set_requires_grad(true);
        let za = emb.forward_embedded(&(&e + &d), &b.attention_mask, true).unwrap();
        let p = z.softmax(-1, Kind::Float);
        let kl = (&p * (z.log_softmax(-1, Kind::Float) - za.log_softmax(-1, Kind::Float))).sum_dim_intlist([-1i64].as_slice(), false, Kind::Float).mean(Kind::Float);
        let g = Tensor::run_backward(&[kl], &[&d], false, false).remove(0);
        let step = (d.detach() + g * c.step_size) * &m;
        noise = &step / (step.abs().amax([-1i64].as_slice(), true) + c.epsilon);
    }
    assert!((noise.abs().amax([-1i64].as_slice(), false) - b.attention_mask.to_kind(Kind::Float)).abs().max().double_value(&[]) < 1e-4, "each real token's perturbation has L∞ norm 1");
    let za = emb.forward_embedded(&(&e + &noise), &b.attention_mask, true).unwrap();
    let reg = hand_kl(&z, &za) + hand_kl(&za, &z);
    let term = |n: &str| out.terms.iter().find(|(k, _)| k == n).unwrap().1;
    assert!((term("smart") - reg).abs() < 1e-5 && reg > 0.0, "{} vs {reg}", term("smart"));
    assert!((out.value - (ce(&z, &b.labels) + c.weight * reg)).abs() < 1e-5);
}
