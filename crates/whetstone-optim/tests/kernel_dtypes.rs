//! `kernel = "torch-fused"` on every floating-point dtype libtorch's CPU fused kernels take
//! (float32, float64, float16, bfloat16), in both layouts: 20 steps of SGD, Adam and AdamW land
//! where a float64 run of the same update does, to the dtype's precision. (CPU SGD in float16 /
//! bfloat16 runs the chain: libtorch 2.11's kernel skips its vectorised elements there.)

use tch::{Device, Kind, Tensor};
use whetstone_optim::*;

/// Large enough for the kernels' vectorised loops and their scalar tails.
const SHAPES: [&[i64]; 3] = [&[6, 50], &[5], &[333]];

fn params(kind: Kind) -> Vec<Param> {
    tch::manual_seed(5);
    SHAPES.iter().enumerate().map(|(i, s)| Param { name: format!("p{i}"), tensor: (Tensor::randn(*s, (Kind::Double, Device::Cpu)) * 0.5).to_kind(kind).set_requires_grad(true), weight_decay: if i == 1 { 0.0 } else { 0.05 } }).collect()
}

/// 20 steps with fixed gradients; the parameters afterwards as float64.
fn run(kind: Kind, flat: bool, kernel: Kernel, which: &str) -> Vec<f64> {
    let ps = params(kind);
    let handles: Vec<Tensor> = ps.iter().map(|p| p.tensor.shallow_clone()).collect();
    let mut opt: Box<dyn Optimizer> = match which {
        "sgd" => Box::new(Sgd::with_kernel(ps, SgdConfig { momentum: 0.9, dampening: 0.0, nesterov: true }, flat, kernel).unwrap()),
        "adam" => Box::new(Adam::with_kernel(ps, AdamConfig { amsgrad: true, ..Default::default() }, flat, kernel).unwrap()),
        _ => Box::new(AdamW::with_kernel(ps, AdamWConfig::default(), flat, kernel).unwrap()),
    };
    tch::manual_seed(9);
    let grads: Vec<Vec<Tensor>> = (0..20).map(|_| SHAPES.iter().map(|s| Tensor::randn(*s, (Kind::Double, Device::Cpu))).collect()).collect();
    for g in &grads {
        opt.zero_grad();
        let loss = handles.iter().zip(g).map(|(p, g)| (p.to_kind(Kind::Double) * g).sum(Kind::Double)).fold(Tensor::zeros([], (Kind::Double, Device::Cpu)), |a, b| a + b);
        loss.backward();
        opt.step(1e-2).unwrap();
    }
    let all = Tensor::cat(&handles.iter().map(|p| p.detach().to_kind(Kind::Double).reshape([-1])).collect::<Vec<_>>(), 0);
    Vec::<f64>::try_from(&all).unwrap()
}

#[test]
fn torch_fused_runs_every_float_dtype() {
    for which in ["sgd", "adam", "adamw"] {
        let reference = run(Kind::Double, true, Kernel::Whetstone, which);
        let start = params(Kind::Double).iter().flat_map(|p| Vec::<f64>::try_from(&p.tensor.detach().reshape([-1])).unwrap()).collect::<Vec<_>>();
        let moved = reference.iter().zip(&start).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(moved > 0.05, "{which}: parameters barely moved ({moved})");
        for (kind, tol) in [(Kind::Double, 1e-12), (Kind::Float, 1e-5), (Kind::Half, 1e-2), (Kind::BFloat16, 5e-2)] {
            for flat in [true, false] {
                let ours = run(kind, flat, Kernel::TorchFused, which);
                // Relative to the parameters' scale (0.5): reduced precision is absolute near 0.
                let err = ours.iter().zip(&reference).map(|(a, b)| (a - b).abs() / b.abs().max(0.5)).fold(0.0, f64::max);
                eprintln!("{which:<6} {kind:?} flat={flat}: {err:.2e}");
                assert!(err <= tol, "{which} {kind:?} flat={flat}: max rel err {err:e} > {tol:e}");
            }
        }
    }
}

