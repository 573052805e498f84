//! Which kernel runs the Adam / AdamW / SGD update (`optim.kernel` in a recipe): whetstone's
//! own, or libtorch's fused kernels through [`whetstone_torch_ext::fused`].

use crate::error::{OptimError, Result};
use crate::fused::FusedKind;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use whetstone_torch_ext::fused::{self as ext, AdamArgs, AdamBuffers, SgdArgs};

/// The implementation of the Adam, AdamW and SGD update (`optim.kernel = "whetstone"` or
/// `"torch-fused"`). Both keep the same state under the same names (`exp_avg`, `exp_avg_sq`,
/// `max_exp_avg_sq`, `momentum_buffer`) and the same step counter, so a checkpoint saved with
/// one loads with the other, and both follow `torch.optim` to 1e-5 relative
/// (`tests/optim_parity.rs` runs every SGD / Adam / AdamW case with each).
///
/// - [`Kernel::Whetstone`] (the default): on flat buffers, whetstone's one-pass CPU kernel
///   ([`crate::fused`]) for contiguous float32/float64 CPU buffers, the transform chain as
///   tensor ops elsewhere (CUDA, half precision, per-tensor layout).
/// - [`Kernel::TorchFused`]: libtorch's fused kernels (`torch.optim`'s `fused=True`:
///   `_fused_adam_`, `_fused_adamw_`, `_fused_sgd_`), on CPU and CUDA, float32/64, float16 and
///   bfloat16: one call per flat bucket, or in the per-tensor layout one call over the tensor
///   list of each weight decay (and dtype, device). Only Adam, AdamW and SGD have it; any other
///   algorithm with `kernel = "torch-fused"` is a configuration error.
///
/// CPU SGD in float16 / bfloat16 runs the chain under either kernel: libtorch 2.11's CPU
/// `_fused_sgd_` skips the elements of its vectorised loop in reduced precision.
///
/// **The default is [`Kernel::Whetstone`]**, because at MiniLM-L6 shapes on flat buffers (what
/// training uses) the two kernels are within noise of each other on the CPU this was measured
/// on (`reports/optim-speed.md`: 2-core Intel Xeon, float32, 22.6M parameters in 101 tensors,
/// 2 threads, median ms per step, whetstone vs torch-fused):
///
/// | run | Adam | AdamW | SGD (μ = 0.9) |
/// |---|---|---|---|
/// | 3 rounds × 10 steps | 15.85 vs 16.58 | 17.18 vs 16.09 | 12.85 vs 11.04 |
/// | 5 rounds × 20 steps | 16.36 vs 16.88 | 16.37 vs 16.80 | 12.15 vs 12.74 |
///
/// The sign of the difference changes between runs, and the per-round medians of either kernel
/// spread wider (e.g. torch-fused Adam 14.9–20.4 ms, whetstone SGD 9.4–13.2 ms) than the gap
/// between them. Elsewhere torch-fused is the faster choice: in the per-tensor layout (MiniLM:
/// 16–18 ms against the tensor-op chain's 59–216 ms), for flat buffers under 8M elements
/// (1M parameters in 200 tensors: 0.42 / 0.45 / 0.32 ms against 0.73 / 0.74 / 0.48 ms, as
/// whetstone's kernel runs single-threaded below 8M elements), and presumably on CUDA (not
/// measured here), where whetstone's flat buffers run the tensor-op chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kernel {
    /// whetstone's own one-pass CPU kernel on flat buffers, the tensor-op chain elsewhere.
    #[default]
    Whetstone,
    /// libtorch's fused Adam / AdamW / SGD kernels (CPU and CUDA), for those three only.
    TorchFused,
}

impl Kernel {
    /// The recipe spelling: `"whetstone"` or `"torch-fused"`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Whetstone => "whetstone",
            Kernel::TorchFused => "torch-fused",
        }
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// True when libtorch's fused kernels can update `t` in place: a dense, contiguous
/// floating-point tensor (float32/64, float16, bfloat16) on any device.
pub(crate) fn torch_supported(t: &Tensor) -> bool {
    t.defined() && !t.is_sparse() && !t.is_mkldnn() && matches!(t.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16) && t.is_contiguous()
}

/// Whether libtorch's fused kernel of `kind` computes the right update for tensors like `t`.
///
/// Not for SGD on CPU float16 / bfloat16: libtorch 2.11's CPU `_fused_sgd_` leaves the
/// elements of its vectorised loop untouched in reduced precision and updates only the scalar
/// tail (`torch.optim.SGD([p], lr=0.5, fused=True)` on 64 float16 zeros with gradient 1 leaves all
/// 64 at 0; on 30 it moves only the last 14). Those run the transform chain instead. CPU Adam /
/// AdamW and every float32 / float64 kernel match torch's for-loop implementation.
pub(crate) fn torch_handles(kind: FusedKind, t: &Tensor) -> bool {
    !(matches!(kind, FusedKind::Sgd { .. }) && t.device() == Device::Cpu && matches!(t.kind(), Kind::Half | Kind::BFloat16))
}

/// The state buffers of one libtorch kernel call, index-aligned with its parameters. Lists a
/// kind does not use are empty.
#[derive(Debug, Default)]
pub(crate) struct TorchState {
    /// `exp_avg` (Adam).
    pub exp_avgs: Vec<Tensor>,
    /// `exp_avg_sq` (Adam).
    pub exp_avg_sqs: Vec<Tensor>,
    /// `max_exp_avg_sq` (AMSGrad).
    pub max_exp_avg_sqs: Vec<Tensor>,
    /// `momentum_buffer` (SGD with momentum).
    pub momentum_buffers: Vec<Tensor>,
}

/// The state buffer names a kind's kernel reads and writes.
pub(crate) fn state_names(kind: FusedKind) -> &'static [&'static str] {
    match kind {
        FusedKind::Adam { amsgrad: false, .. } => &["exp_avg", "exp_avg_sq"],
        FusedKind::Adam { amsgrad: true, .. } => &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
        FusedKind::Sgd { momentum, .. } if momentum != 0.0 => &["momentum_buffer"],
        FusedKind::Sgd { .. } => &[],
    }
}

/// One libtorch fused update of `params` (same dtype and device, one weight decay).
/// `step` is the 1-based step number; `steps` holds one float32 scalar per parameter already
/// holding it (libtorch reads it for the bias corrections); `first` marks the step on which the
/// SGD momentum buffers are initialised to the gradient.
#[allow(clippy::too_many_arguments)]
pub(crate) fn torch_step(kind: FusedKind, params: &[Tensor], grads: &[Tensor], state: &TorchState, steps: &[Tensor], lr: f64, weight_decay: f64, first: bool) -> Result<()> {
    match kind {
        FusedKind::Adam { betas, eps, amsgrad, decoupled } => {
            let bufs = AdamBuffers { params, grads, exp_avgs: &state.exp_avgs, exp_avg_sqs: &state.exp_avg_sqs, max_exp_avg_sqs: &state.max_exp_avg_sqs, steps };
            let args = AdamArgs { lr, betas, weight_decay, eps, amsgrad, maximize: false, decoupled };
            ext::adam_(bufs, &args, None)?;
        }
        FusedKind::Sgd { momentum, dampening, nesterov } => {
            let args = SgdArgs { lr, momentum, dampening, weight_decay, nesterov, maximize: false, first_step: first };
            ext::sgd_(params, grads, &state.momentum_buffers, &args, None)?;
        }
    }
    Ok(())
}

/// One float32 scalar per device holding the step number, reused across steps (filled in
/// place), so that a step allocates nothing on the device.
#[derive(Debug, Default)]
pub(crate) struct StepTensors {
    by_device: Vec<(Device, Tensor)>,
}

impl StepTensors {
    /// Set every device's scalar to `step`, creating the ones for `devices` that are missing.
    pub fn fill(&mut self, devices: impl IntoIterator<Item = Device>, step: u64) -> Result<()> {
        for d in devices {
            if !self.by_device.iter().any(|(x, _)| *x == d) {
                self.by_device.push((d, Tensor::f_zeros([] as [i64; 0], (Kind::Float, d))?));
            }
        }
        // f32 holds every integer up to 2^24 exactly; torch.optim keeps its fused step as f32 too.
        for (_, t) in &mut self.by_device {
            let _ = t.f_fill_(step as f64)?;
        }
        Ok(())
    }

    /// `n` handles to the scalar of `device` (filled by [`StepTensors::fill`]).
    pub fn list(&self, device: Device, n: usize) -> Result<Vec<Tensor>> {
        let t = self.by_device.iter().find(|(d, _)| *d == device).map(|(_, t)| t).ok_or_else(|| OptimError::State(format!("no step scalar for {device:?}")))?;
        Ok((0..n).map(|_| t.shallow_clone()).collect())
    }
}

/// Refuse state buffers that overlap one another or a parameter in memory: libtorch's kernels
/// read and write them in one pass and would silently compute garbage. `slots` are the
/// parameters (or flat buckets); `state` every buffer the kernel writes. Run once, before the
/// first update (the kernels never replace a buffer, and `load_state` copies in place).
pub(crate) fn check_disjoint(slots: &[(&str, &Tensor)], state: &[(&str, &Tensor)]) -> Result<()> {
    // (start, end, is_state, name) byte ranges of non-empty tensors, per device.
    let mut ranges: Vec<(Device, usize, usize, bool, &str)> = Vec::with_capacity(slots.len() + state.len());
    let span = |t: &Tensor| -> Result<Option<(usize, usize)>> {
        if !t.defined() || t.is_sparse() || t.is_mkldnn() || t.numel() == 0 {
            return Ok(None);
        }
        let start = t.data_ptr() as usize;
        let len = t.numel().checked_mul(t.f_kind()?.elt_size_in_bytes()).ok_or_else(|| OptimError::State("a state buffer is too large".into()))?;
        Ok(Some((start, start.saturating_add(len))))
    };
    for &(name, p) in slots {
        if let Some((a, b)) = span(p)? {
            ranges.push((p.device(), a, b, false, name));
        }
    }
    for &(name, t) in state {
        if let Some((a, b)) = span(t)? {
            ranges.push((t.device(), a, b, true, name));
        }
    }
    ranges.sort_by_cached_key(|r| (format!("{:?}", r.0), r.1));
    // Sweep in address order, remembering the furthest end reached by any range and by any
    // state buffer (per device). Parameters may share storage with one another; a state buffer
    // may share with nothing.
    let mut device = None;
    let (mut any, mut st): ((usize, &str), (usize, &str)) = ((0, ""), (0, ""));
    for &(d, a, b, is_state, name) in &ranges {
        if device != Some(d) {
            device = Some(d);
            (any, st) = ((0, ""), (0, ""));
        }
        let other = if is_state && a < any.0 {
            Some(any.1)
        } else if !is_state && a < st.0 {
            Some(st.1)
        } else {
            None
        };
        if let Some(other) = other {
            let (s, o) = if is_state { (name, other) } else { (other, name) };
            return Err(OptimError::State(format!("torch-fused kernel: state buffer `{s}` overlaps `{o}` in memory; the kernels need disjoint buffers")));
        }
        if b > any.0 {
            any = (b, name);
        }
        if is_state && b > st.0 {
            st = (b, name);
        }
    }
    Ok(())
}
