//! The fused kernels write through raw pointers; a chain run with `ChainOptimizer::with_fused`
//! is public, so a user transform can hand them any state buffers. Aliased, overlapping,
//! non-contiguous or wrongly typed buffers must give an error, not undefined behaviour, and
//! leave the parameters as they were.

use tch::{Device, Kind, Tensor};
use whetstone_optim::fused::FusedKind;
use whetstone_optim::transform::{chain, StepCtx, Transform, TransformState};
use whetstone_optim::*;

const ADAMW: FusedKind = FusedKind::Adam { betas: (0.9, 0.999), eps: 1e-8, amsgrad: false, decoupled: true };
const SGD: FusedKind = FusedKind::Sgd { momentum: 0.9, dampening: 0.0, nesterov: false };

/// How the state buffers of [`State`] are made from each slot (a flat parameter buffer).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Make {
    /// Zero-filled, one allocation each: what the kernels expect.
    Fresh,
    /// `exp_avg` and `exp_avg_sq` are the same tensor.
    SameTensor,
    /// The first buffer is the parameter buffer itself.
    ParamItself,
    /// Two views of one storage that share half their elements.
    Overlapping,
    /// The last buffer is a strided (every other element) view.
    NonContiguous,
    /// The last buffer is float64 while the parameters are float32.
    WrongDtype,
    /// The last buffer has one element too many.
    WrongSize,
}

/// A transform that only keeps state (`names`), made as `make` says; the fused kernel does the
/// update.
#[derive(Debug)]
struct State {
    names: &'static [&'static str],
    make: Make,
}

impl Transform for State {
    fn init(&self, params: &[Tensor]) -> Result<TransformState> {
        let mut buffers: Vec<(String, Vec<Tensor>)> = self.names.iter().map(|n| (n.to_string(), Vec::new())).collect();
        for p in params {
            let n = p.numel() as i64;
            let fresh = || p.f_zeros_like();
            let last = self.names.len() - 1;
            let mut made: Vec<Tensor> = (0..self.names.len()).map(|_| fresh()).collect::<std::result::Result<_, _>>()?;
            match self.make {
                Make::Fresh => {}
                Make::SameTensor => made[1] = made[0].shallow_clone(),
                Make::ParamItself => made[0] = p.shallow_clone(),
                Make::Overlapping => {
                    let storage = Tensor::f_zeros([2 * n], (p.kind(), p.device()))?;
                    made[0] = storage.f_narrow(0, 0, n)?;
                    made[last] = storage.f_narrow(0, n / 2, n)?;
                }
                Make::NonContiguous => made[last] = Tensor::f_zeros([2 * n], (p.kind(), p.device()))?.f_slice(0, 0, 2 * n, 2)?,
                Make::WrongDtype => made[last] = made[last].f_to_kind(Kind::Double)?,
                Make::WrongSize => made[last] = Tensor::f_zeros([n + 1], (p.kind(), p.device()))?,
            }
            for (b, t) in buffers.iter_mut().zip(made) {
                b.1.push(t);
            }
        }
        Ok(TransformState { buffers, scalars: Vec::new() })
    }

    fn update(&self, _: &mut [Tensor], _: &mut TransformState, _: &StepCtx) -> Result<()> {
        Err(OptimError::Config("this test transform only runs under a fused kernel".into()))
    }
}

/// Two float32 parameters with gradients, and a copy of their values.
fn params() -> (Vec<Param>, Vec<Tensor>) {
    // Fixed values, not torch's global generator: the tests of this binary run in parallel.
    let shapes: [&[i64]; 2] = [&[4, 3], &[5]];
    let ps: Vec<Tensor> = shapes
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let n: i64 = s.iter().product();
            (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.7 + k as f64).sin().reshape(*s).set_requires_grad(true)
        })
        .collect();
    let params = ps.iter().enumerate().map(|(i, t)| Param { name: format!("p{i}"), tensor: t.shallow_clone(), weight_decay: 0.01 }).collect();
    (params, ps)
}

/// Build the optimiser (flat buffers) with `kind` over the state `make`s, take one step.
fn step(kind: FusedKind, make: Make) -> (Result<()>, Vec<Tensor>, Vec<Tensor>) {
    let names: &'static [&'static str] = match kind {
        FusedKind::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        FusedKind::Sgd { .. } => &["momentum_buffer"],
    };
    let (params, ps) = params();
    let mut opt = ChainOptimizer::new(params, chain(vec![Box::new(State { names, make })]), true).unwrap().with_fused(kind);
    assert!(opt.is_flat());
    let before: Vec<Tensor> = ps.iter().map(|p| p.detach().copy()).collect();
    opt.zero_grad();
    let loss = ps.iter().map(|p| (p * p).sum(Kind::Float)).fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b);
    loss.backward();
    let result = opt.step(1e-2);
    (result, before, ps)
}

fn assert_refused(kind: FusedKind, make: Make, what: &str) {
    let (result, before, after) = step(kind, make);
    match result {
        Err(OptimError::State(msg)) => assert!(msg.contains(what), "{make:?}: error `{msg}` does not mention `{what}`"),
        other => panic!("{make:?}: expected an error mentioning `{what}`, got {other:?}"),
    }
    for (b, a) in before.iter().zip(&after) {
        assert!(b.equal(&a.detach()), "{make:?}: the parameters changed although the step was refused");
    }
}

#[test]
fn aliased_state_buffers_give_an_error() {
    assert_refused(ADAMW, Make::SameTensor, "overlaps buffer `exp_avg`");
    assert_refused(ADAMW, Make::ParamItself, "overlaps buffer `param`");
    assert_refused(ADAMW, Make::Overlapping, "overlaps buffer `exp_avg`");
    assert_refused(SGD, Make::ParamItself, "overlaps buffer `param`");
}

#[test]
fn non_contiguous_wrongly_typed_or_sized_state_gives_an_error() {
    assert_refused(ADAMW, Make::NonContiguous, "not contiguous");
    assert_refused(SGD, Make::NonContiguous, "not contiguous");
    assert_refused(ADAMW, Make::WrongDtype, "dtype Double, the parameters Float");
    assert_refused(SGD, Make::WrongDtype, "dtype Double, the parameters Float");
    assert_refused(ADAMW, Make::WrongSize, "elements");
}

#[test]
fn well_formed_state_runs_the_kernel_like_the_named_optimisers() {
    for (kind, named) in [(ADAMW, 0), (SGD, 1)] {
        let (result, before, after) = step(kind, Make::Fresh);
        result.unwrap();
        // The same step through the public AdamW / SGD (same fused kernel, same buffers).
        assert_like_named(named, Kernel::Whetstone, true, &before, &after, &format!("{kind:?}"));
    }
}

/// One step of the named AdamW (`named == 0`) or SGD with `kernel` and layout `flat` from the
/// same parameters and gradients must change every parameter from `before` to exactly `after`.
fn assert_like_named(named: usize, kernel: Kernel, flat: bool, before: &[Tensor], after: &[Tensor], what: &str) {
    let (params, ps) = params();
    let mut opt: Box<dyn Optimizer> = if named == 0 {
        Box::new(AdamW::with_kernel(params, AdamWConfig::default(), flat, kernel).unwrap())
    } else {
        Box::new(Sgd::with_kernel(params, SgdConfig::default(), flat, kernel).unwrap())
    };
    opt.zero_grad();
    let loss = ps.iter().map(|p| (p * p).sum(Kind::Float)).fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b);
    loss.backward();
    opt.step(1e-2).unwrap();
    for ((b, a), want) in before.iter().zip(after).zip(&ps) {
        assert!(!b.equal(&a.detach()), "{what}: the step changed nothing");
        assert!(a.detach().equal(&want.detach()), "{what}: differs from the named optimiser");
    }
}

/// As [`step`], with `kernel` and the layout chosen.
fn step_with(kind: FusedKind, make: Make, kernel: Kernel, flat: bool) -> (Result<()>, Vec<Tensor>, Vec<Tensor>) {
    let names: &'static [&'static str] = match kind {
        FusedKind::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        FusedKind::Sgd { .. } => &["momentum_buffer"],
    };
    let (params, ps) = params();
    let mut opt = ChainOptimizer::new(params, chain(vec![Box::new(State { names, make })]), flat).unwrap().with_fused(kind).with_kernel(kernel).unwrap();
    assert_eq!((opt.is_flat(), opt.kernel()), (flat, kernel));
    let before: Vec<Tensor> = ps.iter().map(|p| p.detach().copy()).collect();
    opt.zero_grad();
    let loss = ps.iter().map(|p| (p * p).sum(Kind::Float)).fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b);
    loss.backward();
    let result = opt.step(1e-2);
    (result, before, ps)
}

/// libtorch's kernels get the same protection: aliased or overlapping state, and buffers of the
/// wrong layout, dtype or size, give an error and leave the parameters as they were, in both
/// layouts.
#[test]
fn torch_fused_kernel_refuses_bad_state_too() {
    for flat in [true, false] {
        for (kind, make, what) in [
            (ADAMW, Make::SameTensor, "overlaps"),
            (ADAMW, Make::ParamItself, "overlaps"),
            (ADAMW, Make::Overlapping, "overlaps"),
            (SGD, Make::ParamItself, "overlaps"),
            (ADAMW, Make::WrongDtype, "dtype"),
            (SGD, Make::WrongDtype, "dtype"),
            (ADAMW, Make::WrongSize, "shape"),
            // Per tensor, a non-contiguous buffer sends its parameter to the chain (here the test
            // transform, which refuses); on flat buffers libtorch's checks refuse it.
            (ADAMW, Make::NonContiguous, if flat { "contiguous" } else { "only runs under a fused kernel" }),
            (SGD, Make::NonContiguous, if flat { "contiguous" } else { "only runs under a fused kernel" }),
        ] {
            let (result, before, after) = step_with(kind, make, Kernel::TorchFused, flat);
            let msg = match result {
                Err(e) => e.to_string(),
                Ok(()) => panic!("{make:?} flat={flat}: expected an error mentioning `{what}`"),
            };
            assert!(msg.contains(what), "{make:?} flat={flat}: error `{msg}` does not mention `{what}`");
            for (b, a) in before.iter().zip(&after) {
                assert!(b.equal(&a.detach()), "{make:?} flat={flat}: the parameters changed although the step was refused");
            }
        }
    }
}

/// A chain without a fused kind cannot ask for libtorch's kernel.
#[test]
fn torch_fused_kernel_needs_a_fused_kind() {
    let (params, _) = params();
    let e = ChainOptimizer::new(params, chain(vec![Box::new(State { names: &["exp_avg"], make: Make::Fresh })]), true).unwrap().with_kernel(Kernel::TorchFused).unwrap_err();
    assert!(matches!(e, OptimError::Config(_)) && e.to_string().contains("torch-fused"), "{e}");
}

/// Well-formed state through libtorch's kernel matches the named optimisers with that kernel.
#[test]
fn torch_fused_chain_matches_the_named_optimisers() {
    for flat in [true, false] {
        for (kind, named) in [(ADAMW, 0), (SGD, 1)] {
            let (result, before, after) = step_with(kind, Make::Fresh, Kernel::TorchFused, flat);
            result.unwrap();
            assert_like_named(named, Kernel::TorchFused, flat, &before, &after, &format!("{kind:?} flat={flat}"));
        }
    }
}
