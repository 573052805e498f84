//! Initialisers against `torch.nn.init` itself, through the committed oracle
//! `tests/oracle/lr_schedulers.py`: after the same `manual_seed`, the same numbers. No torch, no
//! pass: a missing oracle fails the test.

mod lr_oracle;

use lr_oracle::oracle;
use serde_json::{json, Value};
use tch::Kind;
use whetstone_optim::{fan_in_fan_out, FanMode, Init, Kaiming, Nonlinearity};

fn kaiming(mode: FanMode, nonlinearity: Nonlinearity, negative_slope: f64) -> Init {
    Init::KaimingUniform(Kaiming { mode, nonlinearity, negative_slope })
}

#[test]
fn initialisers_draw_what_torch_nn_init_draws() {
    // (whetstone init, torch function, torch kwargs, shape, largest allowed |difference|).
    // Exact where the operations are the same; `trunc_normal_` computes its CDF bounds with
    // Python's `math.erf` (whetstone: libtorch's), and `orthogonal_` factorises in float32
    // (whetstone: float64, for a more orthogonal result).
    let torch_linear_default = kaiming(FanMode::FanIn, Nonlinearity::LeakyRelu, 5f64.sqrt());
    let cases: Vec<(Init, &str, Value, Vec<i64>, f64)> = vec![
        (Init::XavierUniform { gain: 1.0 }, "xavier_uniform_", json!({}), vec![64, 32], 0.0),
        (Init::XavierNormal { gain: 2.0 }, "xavier_normal_", json!({"gain": 2.0}), vec![40, 30, 3], 0.0),
        (torch_linear_default, "kaiming_uniform_", json!({"a": 5f64.sqrt()}), vec![64, 32], 0.0),
        (kaiming(FanMode::FanOut, Nonlinearity::Tanh, 0.0), "kaiming_uniform_", json!({"mode": "fan_out", "nonlinearity": "tanh"}), vec![16, 8, 5], 0.0),
        (
            Init::KaimingNormal(Kaiming { mode: FanMode::FanOut, nonlinearity: Nonlinearity::Relu, negative_slope: 0.0 }),
            "kaiming_normal_",
            json!({"mode": "fan_out", "nonlinearity": "relu"}),
            vec![50, 20, 5],
            0.0,
        ),
        (Init::TruncatedNormal { mean: 0.0, std: 0.02, low: None, high: None }, "trunc_normal_", json!({"std": 0.02, "a": -0.04, "b": 0.04}), vec![64, 64], 1e-9),
        (Init::TruncatedNormal { mean: 0.1, std: 0.5, low: Some(-0.2), high: Some(0.9) }, "trunc_normal_", json!({"mean": 0.1, "std": 0.5, "a": -0.2, "b": 0.9}), vec![33, 17], 1e-7),
        (Init::Orthogonal { gain: 1.0 }, "orthogonal_", json!({}), vec![20, 50], 1e-6),
        (Init::Orthogonal { gain: 1.5 }, "orthogonal_", json!({"gain": 1.5}), vec![50, 20], 1e-6),
        (Init::Orthogonal { gain: 1.0 }, "orthogonal_", json!({}), vec![16, 4, 3], 1e-6),
        (Init::Normal { mean: 0.3, std: 2.0 }, "normal_", json!({"mean": 0.3, "std": 2.0}), vec![7, 9], 0.0),
        (Init::Uniform { low: -1.0, high: 3.0 }, "uniform_", json!({"a": -1.0, "b": 3.0}), vec![7, 9], 0.0),
        (Init::Constant { value: 0.7 }, "constant_", json!({"val": 0.7}), vec![3, 4], 0.0),
        (Init::Zeros, "zeros_", json!({}), vec![3], 0.0),
        (Init::Ones, "ones_", json!({}), vec![3], 0.0),
    ];
    let fan_shapes: Vec<Vec<i64>> = vec![vec![3, 4], vec![5, 6, 7], vec![2, 3, 4, 5], vec![10, 1], vec![100, 300, 3]];
    let gains: Vec<(Nonlinearity, &str, f64)> = vec![
        (Nonlinearity::Linear, "linear", 0.0),
        (Nonlinearity::Sigmoid, "sigmoid", 0.0),
        (Nonlinearity::Tanh, "tanh", 0.0),
        (Nonlinearity::Relu, "relu", 0.0),
        (Nonlinearity::LeakyRelu, "leaky_relu", 0.2),
        (Nonlinearity::LeakyRelu, "leaky_relu", 0.0),
        (Nonlinearity::Selu, "selu", 0.0),
    ];
    let request = json!({
        "inits": cases.iter().enumerate().map(|(i, (_, f, args, shape, _))| json!({"name": i.to_string(), "fn": f, "shape": shape, "seed": 1000 + i, "args": args})).collect::<Vec<_>>(),
        "fans": fan_shapes,
        "gains": gains.iter().map(|(_, n, a)| json!([n, a])).collect::<Vec<_>>(),
    });
    let answer = oracle(&request);

    let mut failures = Vec::new();
    for (i, (init, f, _, shape, tol)) in cases.iter().enumerate() {
        tch::manual_seed(1000 + i as i64);
        let ours: Vec<f64> = Vec::try_from(init.sample(shape, Kind::Float).unwrap().unwrap().to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let theirs: Vec<f64> = serde_json::from_value(answer["inits"][i.to_string()].clone()).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{f}");
        // Compared as the float32 values they are (serde_json's float parsing is within an ulp
        // of f64, not exact).
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (*a as f32 - *b as f32).abs() as f64).fold(0.0, f64::max);
        eprintln!("{f:18} {shape:?}: max |whetstone − torch| = {worst:.2e}");
        if worst > *tol {
            failures.push(format!("{f} {shape:?} ({init:?}): max |difference| {worst:e} > {tol:e}"));
        }
    }
    for (shape, fans) in fan_shapes.iter().zip(answer["fans"].as_array().unwrap()) {
        let (fi, fo) = fan_in_fan_out(shape).unwrap();
        assert_eq!(json!([fi, fo]), *fans, "fans of {shape:?}");
    }
    for ((nl, name, a), g) in gains.iter().zip(answer["gains"].as_array().unwrap()) {
        assert_eq!(nl.gain(*a), g.as_f64().unwrap(), "gain of {name}({a})");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
