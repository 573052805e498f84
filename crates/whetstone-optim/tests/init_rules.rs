//! Initialisers: their statistics on large tensors, and how rules pick parameters by name.

use std::sync::Mutex;
use tch::{nn, Device, Kind, Tensor};
use whetstone_optim::{apply_init, bert_init, FanMode, Init, InitRule, Kaiming, Nonlinearity};

/// torch's generator is global and the tests run on parallel threads: every test that draws
/// from it (seeded sampling, `apply_init`, or just building layers, which draws their default
/// init) holds this lock for its whole body, so no other test's draw lands between a
/// `manual_seed` and the draws that depend on it.
static RNG: Mutex<()> = Mutex::new(());

fn rng() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn draw(init: &Init, shape: &[i64], seed: i64) -> Tensor {
    tch::manual_seed(seed);
    init.sample(shape, Kind::Float).unwrap().unwrap().to_kind(Kind::Double)
}

fn std_of(t: &Tensor) -> f64 {
    t.std(true).double_value(&[])
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    assert!((got / want - 1.0).abs() < rel, "{what}: got {got}, expected {want} (±{:.0}%)", rel * 100.0);
}

#[test]
fn xavier_and_kaiming_have_the_variance_of_their_fans() {
    let _g = rng();
    let linear = [512i64, 256]; // [out, in]: fan_in 256, fan_out 512
    let conv = [64i64, 128, 5]; // [out, in, k]: fan_in 640, fan_out 320
    let k = |mode, nonlinearity, negative_slope| Kaiming { mode, nonlinearity, negative_slope };
    let cases: Vec<(Init, &[i64], f64, bool)> = vec![
        (Init::XavierUniform { gain: 1.0 }, &linear, (2.0 / 768.0f64).sqrt(), true),
        (Init::XavierNormal { gain: 2.0 }, &linear, 2.0 * (2.0 / 768.0f64).sqrt(), false),
        (Init::XavierUniform { gain: 5.0 / 3.0 }, &conv, 5.0 / 3.0 * (2.0 / 960.0f64).sqrt(), true),
        (Init::KaimingUniform(Kaiming::default()), &linear, (2.0 / 256.0f64).sqrt(), true),
        (Init::KaimingNormal(k(FanMode::FanOut, Nonlinearity::Relu, 0.0)), &linear, (2.0 / 512.0f64).sqrt(), false),
        (Init::KaimingUniform(k(FanMode::FanIn, Nonlinearity::LeakyRelu, 0.2)), &conv, (2.0 / 1.04f64).sqrt() / 640f64.sqrt(), true),
        (Init::KaimingNormal(k(FanMode::FanOut, Nonlinearity::Tanh, 0.0)), &conv, 5.0 / 3.0 / 320f64.sqrt(), false),
        (Init::KaimingUniform(k(FanMode::FanIn, Nonlinearity::Linear, 0.0)), &conv, 1.0 / 640f64.sqrt(), true),
        (Init::Normal { mean: 0.0, std: 0.02 }, &linear, 0.02, false),
        (Init::Uniform { low: -0.25, high: 0.25 }, &linear, 0.25 / 3f64.sqrt(), true),
    ];
    for (i, (init, shape, std, uniform)) in cases.iter().enumerate() {
        let t = draw(init, shape, i as i64);
        assert_eq!(t.size(), shape.to_vec());
        close(std_of(&t), *std, 0.02, &format!("{init:?} on {shape:?}"));
        assert!(t.mean(Kind::Double).double_value(&[]).abs() < 0.02 * std, "{init:?}: mean");
        if *uniform {
            let bound = 3f64.sqrt() * std;
            assert!(max_abs(&t) <= bound * (1.0 + 1e-6), "{init:?}: outside ±{bound}");
            close(max_abs(&t), bound, 0.01, &format!("{init:?} reaches its bound"));
        }
    }
}

#[test]
fn truncated_normal_respects_its_bounds() {
    let _g = rng();
    // BERT's: std 0.02 cut at ±2σ. A standard normal truncated at ±2 has std 0.8796.
    let t = draw(&Init::TruncatedNormal { mean: 0.0, std: 0.02, low: None, high: None }, &[512, 512], 1);
    assert!(max_abs(&t) <= 0.04 + 1e-9);
    close(max_abs(&t), 0.04, 0.01, "reaches ±2σ");
    close(std_of(&t), 0.02 * 0.879_596, 0.02, "truncated std");
    let t = draw(&Init::TruncatedNormal { mean: 0.1, std: 0.05, low: Some(0.09), high: Some(0.3) }, &[256, 256], 2);
    assert!(t.min().double_value(&[]) >= 0.09 - 1e-9 && t.max().double_value(&[]) <= 0.3 + 1e-9);
    for bad in [Init::TruncatedNormal { mean: 0.0, std: 1.0, low: Some(1.0), high: Some(0.5) }, Init::Uniform { low: 1.0, high: 0.0 }] {
        assert!(bad.sample(&[4, 4], Kind::Float).is_err(), "{bad:?}");
    }
}

#[test]
fn orthogonal_rows_or_columns_are_orthonormal() {
    let _g = rng();
    for (shape, gain) in [(vec![128i64, 256], 1.0), (vec![256, 128], 1.0), (vec![32, 8, 3], 2.0), (vec![64, 64], 1.0)] {
        let w = draw(&Init::Orthogonal { gain }, &shape, 3).reshape([shape[0], -1]);
        let (r, c) = (w.size()[0], w.size()[1]);
        let gram = if r <= c { w.matmul(&w.tr()) } else { w.tr().matmul(&w) };
        let eye = Tensor::eye(r.min(c), (Kind::Double, Device::Cpu)) * gain * gain;
        let err = max_abs(&(gram - eye));
        assert!(err < 1e-5 * gain * gain, "{shape:?}: |W·Wᵀ − gain²·I| = {err:e}");
    }
    assert!(Init::Orthogonal { gain: 1.0 }.sample(&[8], Kind::Float).is_err());
}

/// `emb.weight` [100, 16], `enc.dense.{weight,bias}`, `enc.LayerNorm.{weight,bias}`.
fn small_model(vs: &nn::VarStore) {
    let root = vs.root();
    let _ = nn::embedding(&root / "emb", 100, 16, Default::default());
    let _ = nn::linear(&root / "enc" / "dense", 16, 16, Default::default());
    let _ = nn::layer_norm(&root / "enc" / "LayerNorm", vec![16], Default::default());
}

fn var(vs: &nn::VarStore, name: &str) -> Tensor {
    vs.variables()[name].detach().copy()
}

fn apply(vs: &nn::VarStore, rules: &[InitRule], seed: u64) -> whetstone_optim::Result<whetstone_optim::InitReport> {
    apply_init(vs, rules, seed)
}

#[test]
fn first_matching_rule_wins_and_the_report_says_who_got_what() {
    let _g = rng();
    let vs = nn::VarStore::new(Device::Cpu);
    small_model(&vs);
    let rules = [
        InitRule::new("LayerNorm", Init::Keep), // no wildcard: a substring, as in param groups
        InitRule::new("*.bias", Init::Constant { value: 0.5 }),
        InitRule::new("emb.*", Init::Uniform { low: -0.25, high: 0.25 }),
        InitRule::new("*", Init::XavierUniform { gain: 1.0 }),
    ];
    let report = apply(&vs, &rules, 7).unwrap();
    let rule_of = |n: &str| report.assigned.iter().find(|a| a.name == n).map(|a| a.rule);
    assert_eq!(rule_of("enc.LayerNorm.weight"), Some(0));
    assert_eq!(rule_of("enc.LayerNorm.bias"), Some(0));
    assert_eq!(rule_of("enc.dense.bias"), Some(1));
    assert_eq!(rule_of("emb.weight"), Some(2));
    assert_eq!(rule_of("enc.dense.weight"), Some(3));
    assert!(report.untouched.is_empty());
    assert_eq!(var(&vs, "enc.LayerNorm.weight"), Tensor::ones([16], (Kind::Float, Device::Cpu)));
    assert_eq!(var(&vs, "enc.dense.bias"), Tensor::full([16], 0.5, (Kind::Float, Device::Cpu)));
    assert!(max_abs(&var(&vs, "emb.weight")) <= 0.25);
    assert!(max_abs(&var(&vs, "enc.dense.weight")) <= (6.0f64 / 32.0).sqrt());
    assert!(report.to_string().contains("enc.dense.weight"));

    let report = apply(&vs, &[InitRule::new("emb.*", Init::Zeros)], 7).unwrap();
    assert_eq!(report.untouched.len(), 4);
}

#[test]
fn a_pattern_that_matches_nothing_is_an_error_and_changes_nothing() {
    let _g = rng();
    let vs = nn::VarStore::new(Device::Cpu);
    small_model(&vs);
    let before = var(&vs, "enc.dense.weight");
    let rules = [InitRule::new("*.weight", Init::Zeros), InitRule::new("*.wieght", Init::Ones)];
    let e = apply(&vs, &rules, 0).unwrap_err().to_string();
    assert!(e.contains("`*.wieght`") && e.contains("enc.dense.weight"), "{e}");
    assert_eq!(var(&vs, "enc.dense.weight"), before);
    // The same rule marked optional is fine.
    let rules = [InitRule::new("*.weight", Init::Zeros), InitRule::new("*.wieght", Init::Ones).optional()];
    apply(&vs, &rules, 0).unwrap();
    assert_eq!(max_abs(&var(&vs, "enc.dense.weight")), 0.0);
    // Shadowed by an earlier rule is not "matches nothing".
    apply(&vs, &[InitRule::new("*", Init::Zeros), InitRule::new("*.bias", Init::Ones)], 0).unwrap();
}

#[test]
fn a_shape_without_fans_is_an_error_before_anything_is_written() {
    let _g = rng();
    let vs = nn::VarStore::new(Device::Cpu);
    small_model(&vs);
    let before = var(&vs, "emb.weight");
    let e = apply(&vs, &[InitRule::new("*", Init::XavierNormal { gain: 1.0 })], 0).unwrap_err().to_string();
    assert!(e.contains("enc.LayerNorm.bias") || e.contains("enc.dense.bias"), "{e}");
    assert_eq!(var(&vs, "emb.weight"), before);
}

#[test]
fn the_same_seed_gives_the_same_parameters_whatever_else_exists() {
    let _g = rng();
    let rules = [InitRule::new("*LayerNorm*", Init::Keep), InitRule::new("*.bias", Init::Zeros), InitRule::new("*", Init::KaimingNormal(Kaiming::default()))];
    let (a, b, c) = (nn::VarStore::new(Device::Cpu), nn::VarStore::new(Device::Cpu), nn::VarStore::new(Device::Cpu));
    small_model(&a);
    small_model(&b);
    small_model(&c);
    let _ = nn::linear(c.root() / "extra", 8, 8, Default::default());
    apply(&a, &rules, 11).unwrap();
    apply(&b, &rules, 11).unwrap();
    apply(&c, &rules, 11).unwrap();
    for name in ["emb.weight", "enc.dense.weight"] {
        assert_eq!(var(&a, name), var(&b, name), "{name}");
        assert_eq!(var(&a, name), var(&c, name), "{name} changed when another parameter was added");
    }
    apply(&b, &rules, 12).unwrap();
    assert_ne!(var(&a, "emb.weight"), var(&b, "emb.weight"));
}

#[test]
fn bert_rules_reproduce_bert() {
    let _g = rng();
    for truncated in [false, true] {
        let vs = nn::VarStore::new(Device::Cpu);
        small_model(&vs);
        let report = apply(&vs, &bert_init(0.02, truncated), 5).unwrap();
        assert!(report.untouched.is_empty());
        assert_eq!(var(&vs, "enc.LayerNorm.weight"), Tensor::ones([16], (Kind::Float, Device::Cpu)));
        assert_eq!(max_abs(&var(&vs, "enc.dense.bias")), 0.0);
        let emb = var(&vs, "emb.weight").to_kind(Kind::Double);
        close(std_of(&emb), if truncated { 0.02 * 0.8796 } else { 0.02 }, 0.1, "embedding std");
        // 1600 draws: untruncated, some are beyond 2σ for sure (P ≈ 1 − 0.955¹⁶⁰⁰).
        assert_eq!(max_abs(&emb) <= 0.04 + 1e-9, truncated, "max |w| = {}", max_abs(&emb));
    }
}

#[test]
fn rules_read_from_recipe_toml() {
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Recipe {
        init: Vec<InitRule>,
    }
    let text = r#"
        [[init]]
        pattern = "*LayerNorm*"
        kind = "keep"
        [[init]]
        pattern = "*.bias"
        kind = "constant"
        value = 0.0
        optional = true
        [[init]]
        pattern = "*.weight"
        kind = "kaiming-uniform"
        mode = "fan-out"
        nonlinearity = "leaky-relu"
        negative_slope = 0.1
        [[init]]
        pattern = "emb.*"
        kind = "truncated-normal"
        std = 0.02
    "#;
    let r: Recipe = toml::from_str(text).unwrap();
    assert_eq!(r.init[0], InitRule::new("*LayerNorm*", Init::Keep));
    assert_eq!(r.init[1], InitRule::new("*.bias", Init::Constant { value: 0.0 }).optional());
    assert_eq!(r.init[2].init, Init::KaimingUniform(Kaiming { mode: FanMode::FanOut, nonlinearity: Nonlinearity::LeakyRelu, negative_slope: 0.1 }));
    assert_eq!(r.init[3].init, Init::TruncatedNormal { mean: 0.0, std: 0.02, low: None, high: None });
    // Re-serialised, every given key is still there (how whetstone-train spots unknown keys).
    let given: toml::Value = toml::from_str(text).unwrap();
    let known = toml::Value::try_from(&r).unwrap();
    for (g, k) in given["init"].as_array().unwrap().iter().zip(known["init"].as_array().unwrap()) {
        for key in g.as_table().unwrap().keys() {
            assert!(k.get(key).is_some(), "`{key}` dropped: {k}");
        }
    }
    for bad in ["pattern = \"*\"\nkind = \"xavier\"", "pattern = \"*\"\nkind = \"normal\"\nstdev = 1.0", "kind = \"zeros\""] {
        assert!(toml::from_str::<InitRule>(bad).is_err(), "accepted: {bad}");
    }
}
