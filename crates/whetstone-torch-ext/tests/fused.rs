//! libtorch's fused kernels through the extension: the update is AdamW's / SGD's (checked
//! against the formula written with tensor ops), the unscale/skip inputs work, and bad calls
//! come back as errors naming the kernel instead of crashing. Parity with torch.optim's whole
//! trajectories is tested in whetstone-optim (`optim.kernel = "torch-fused"`).

use tch::{Device, Kind, Tensor};
use whetstone_torch_ext::fused::{adam_, sgd_, AdamArgs, AdamBuffers, SgdArgs, Unscale};

fn t(v: &[f64]) -> Tensor {
    Tensor::from_slice(v).to_kind(Kind::Float)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn args(amsgrad: bool, decoupled: bool) -> AdamArgs {
    AdamArgs { lr: 0.01, betas: (0.9, 0.999), weight_decay: 0.1, eps: 1e-8, amsgrad, maximize: false, decoupled }
}

#[test]
fn adamw_two_steps_match_the_formula() {
    for amsgrad in [false, true] {
        let p = vec![t(&[1.0, -2.0, 3.0]), t(&[0.5])];
        let g = [t(&[0.1, 0.2, -0.3]), t(&[-1.0])];
        let m = vec![Tensor::zeros_like(&p[0]), Tensor::zeros_like(&p[1])];
        let v = vec![Tensor::zeros_like(&p[0]), Tensor::zeros_like(&p[1])];
        let vm: Vec<Tensor> = if amsgrad { vec![Tensor::zeros_like(&p[0]), Tensor::zeros_like(&p[1])] } else { vec![] };
        let a = args(amsgrad, true);
        let mut expect: Vec<Tensor> = p.iter().map(|x| x.copy()).collect();
        let (mut em, mut ev, mut evm): (Vec<Tensor>, Vec<Tensor>, Vec<Tensor>) = (m.iter().map(|x| x.copy()).collect(), v.iter().map(|x| x.copy()).collect(), v.iter().map(|x| x.copy()).collect());
        for step in 1..=2 {
            let steps = vec![t(&[step as f64]).reshape([] as [i64; 0]), t(&[step as f64]).reshape([] as [i64; 0])];
            adam_(AdamBuffers { params: &p, grads: &g, exp_avgs: &m, exp_avg_sqs: &v, max_exp_avg_sqs: &vm, steps: &steps }, &a, None).unwrap();
            for i in 0..2 {
                expect[i] = &expect[i] * (1.0 - a.lr * a.weight_decay);
                em[i] = &em[i] * a.betas.0 + &g[i] * (1.0 - a.betas.0);
                ev[i] = &ev[i] * a.betas.1 + (&g[i] * &g[i]) * (1.0 - a.betas.1);
                evm[i] = evm[i].maximum(&ev[i]);
                let second = if amsgrad { &evm[i] } else { &ev[i] };
                let bc1 = 1.0 - a.betas.0.powi(step);
                let bc2 = 1.0 - a.betas.1.powi(step);
                let denom = second.sqrt() / bc2.sqrt() + a.eps;
                expect[i] = &expect[i] - (&em[i] / denom) * (a.lr / bc1);
            }
        }
        for i in 0..2 {
            let err = max_abs(&p[i], &expect[i]);
            assert!(err < 1e-6, "amsgrad={amsgrad} param {i}: {err:e}");
        }
    }
}

#[test]
fn sgd_momentum_matches_the_formula_and_found_inf_skips() {
    let p = vec![t(&[1.0, 2.0])];
    let g = vec![t(&[0.5, -0.5])];
    let buf = vec![Tensor::zeros_like(&p[0])];
    let a = SgdArgs { lr: 0.1, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false, maximize: false, first_step: true };
    sgd_(&p, &g, &buf, &a, None).unwrap();
    assert!(max_abs(&p[0], &t(&[0.95, 2.05])) < 1e-7);
    sgd_(&p, &g, &buf, &SgdArgs { first_step: false, ..a }, None).unwrap();
    // buf = 0.9·0.5 + 0.5 = 0.95 → p = 0.95 − 0.095.
    assert!(max_abs(&p[0], &t(&[0.855, 2.145])) < 1e-6);
    let before = p[0].copy();
    let scale = t(&[1.0]).reshape([] as [i64; 0]);
    let found = t(&[1.0]).reshape([] as [i64; 0]);
    sgd_(&p, &g, &buf, &SgdArgs { first_step: false, ..a }, Some(Unscale { scale: &scale, found_inf: &found })).unwrap();
    assert_eq!(max_abs(&p[0], &before), 0.0, "found_inf must skip the update");
}

#[test]
fn grad_scale_divides_the_gradients() {
    let run = |scale: Option<f64>| {
        let p = vec![t(&[1.0, -1.0])];
        let g = vec![t(&[0.25, 0.5]) * scale.unwrap_or(1.0)];
        let m = vec![Tensor::zeros_like(&p[0])];
        let v = vec![Tensor::zeros_like(&p[0])];
        let steps = vec![t(&[1.0]).reshape([] as [i64; 0])];
        let s = t(&[scale.unwrap_or(1.0)]).reshape([] as [i64; 0]);
        let f = t(&[0.0]).reshape([] as [i64; 0]);
        let u = scale.map(|_| Unscale { scale: &s, found_inf: &f });
        adam_(AdamBuffers { params: &p, grads: &g, exp_avgs: &m, exp_avg_sqs: &v, max_exp_avg_sqs: &[], steps: &steps }, &args(false, false), u).unwrap();
        (p[0].copy(), m[0].copy())
    };
    let (p1, m1) = run(None);
    let (p2, m2) = run(Some(1024.0));
    assert!(max_abs(&p1, &p2) < 1e-7 && max_abs(&m1, &m2) < 1e-7);
}

#[test]
fn bad_calls_are_errors() {
    let p = vec![t(&[1.0, 2.0])];
    let short_grad = vec![t(&[1.0])];
    let m = vec![Tensor::zeros_like(&p[0])];
    let steps = vec![t(&[1.0]).reshape([] as [i64; 0])];
    // A shape mismatch would let the CPU kernel read past the gradient: refused before the call.
    let e = adam_(AdamBuffers { params: &p, grads: &short_grad, exp_avgs: &m, exp_avg_sqs: &m.iter().map(|x| x.copy()).collect::<Vec<_>>(), max_exp_avg_sqs: &[], steps: &steps }, &args(false, true), None).unwrap_err();
    assert!(e.to_string().contains("grads[0] has shape [1], the parameter [2]"), "{e}");
    let strided = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)).tr();
    let e = sgd_(std::slice::from_ref(&strided), std::slice::from_ref(&strided.contiguous()), &[], &SgdArgs { lr: 0.1, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false, maximize: false, first_step: true }, None).unwrap_err();
    assert!(e.to_string().contains("params[0] is not contiguous"), "{e}");
    let e = adam_(AdamBuffers { params: &p, grads: &p, exp_avgs: &m, exp_avg_sqs: &m, max_exp_avg_sqs: &[], steps: &[Tensor::from_slice(&[1i64])] }, &args(false, true), None).unwrap_err();
    assert!(e.to_string().contains("steps[0] must be a one-element float32"), "{e}");
    // Count mismatches are refused before the call.
    let e = adam_(AdamBuffers { params: &p, grads: &[], exp_avgs: &m, exp_avg_sqs: &m, max_exp_avg_sqs: &[], steps: &steps }, &args(false, true), None).unwrap_err();
    assert!(e.to_string().contains("0 gradients for 1 parameters"), "{e}");
    let e = adam_(AdamBuffers { params: &p, grads: &p, exp_avgs: &m, exp_avg_sqs: &m, max_exp_avg_sqs: &[], steps: &steps }, &args(true, true), None).unwrap_err();
    assert!(e.to_string().contains("AMSGrad"), "{e}");
    let e = sgd_(&p, &p, &[], &SgdArgs { lr: 0.1, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false, maximize: false, first_step: true }, None).unwrap_err();
    assert!(e.to_string().contains("momentum buffers"), "{e}");
    let ip = vec![Tensor::from_slice(&[1i64, 2])];
    let e = sgd_(&ip, &ip, &[], &SgdArgs { lr: 0.1, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false, maximize: false, first_step: true }, None).unwrap_err();
    assert!(e.to_string().contains("floating-point"), "{e}");
}
