//! One-pass CPU kernels for Adam(W) and SGD over flat buffers.
//!
//! With all parameters in one contiguous buffer, the update can be a single loop that reads
//! θ, g, m, v once and writes them once (torch's `fused=True`), instead of ~10 whole-buffer
//! kernels. The per-element arithmetic follows torch's single-tensor (for-loop) code operation
//! by operation, with every intermediate rounded to the parameter dtype as torch rounds it, so
//! the result is the same as the tensor-op path. Buffers of 8M elements or more are split
//! across `tch::get_num_threads()` threads; smaller ones run on the calling thread (see
//! `PARALLEL_MIN`). Used only for contiguous CPU float32 / float64 buffers;
//! anything else takes the tensor-op path.
//!
//! The kernels write through the buffers' raw data pointers, so their entry points (`adam`,
//! `sgd`) are crate-private and validate every buffer before touching memory (`check`):
//! CUDA tensors, wrong dtypes, non-contiguous views or aliased / overlapping buffers (which a
//! custom [`crate::transform::Transform`] run with [`crate::ChainOptimizer::with_fused`] could
//! hand over) give an error instead of undefined behaviour.

use crate::error::{OptimError, Result};
use tch::{Device, Kind, Tensor};

/// Which update a fused kernel performs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusedKind {
    /// Adam / AdamW. `decoupled`: weight decay multiplies θ (AdamW), else it is added to g.
    Adam {
        /// (β₁, β₂).
        betas: (f64, f64),
        /// ε.
        eps: f64,
        /// AMSGrad.
        amsgrad: bool,
        /// Decoupled weight decay.
        decoupled: bool,
    },
    /// SGD with momentum (μ > 0), dampening and Nesterov.
    Sgd {
        /// μ.
        momentum: f64,
        /// τ.
        dampening: f64,
        /// Nesterov.
        nesterov: bool,
    },
}

pub(crate) trait Real: Copy + Send + Sync + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self> + std::ops::Div<Output = Self> + PartialOrd {
    fn of(x: f64) -> Self;
    fn sqrt(self) -> Self;
    /// Exactly as a float64.
    fn wide(self) -> f64;
}
impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn wide(self) -> f64 {
        f64::from(self)
    }
}
impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn wide(self) -> f64 {
        self
    }
}

/// True when the kernels can run on `t` (and buffers like it).
pub fn supported(t: &Tensor) -> bool {
    t.device() == Device::Cpu && matches!(t.kind(), Kind::Float | Kind::Double) && t.is_contiguous()
}

/// Buffers below this many elements are updated by the calling thread alone.
///
/// A step runs right after backward and gradient clipping, whose libtorch ops leave libtorch's
/// OpenMP workers spin-waiting on the other cores for a while. A thread of ours started then
/// competes with them: measured on 2 cores after a libtorch op, a 1.9M-element AdamW step took
/// 0.77–0.87 ms on one thread and 1.6–1.9 ms on two (torch's fused AdamW, which runs on those
/// same OpenMP threads: 0.65–0.98 ms). At 23M elements two threads still win slightly
/// (11.1 against 12.0 ms), so large buffers keep them.
const PARALLEL_MIN: usize = 1 << 23;

pub(crate) fn kernel_threads(n: usize) -> usize {
    if n < PARALLEL_MIN {
        1
    } else {
        tch::get_num_threads().max(1) as usize
    }
}

/// Split `n` elements into `parts` chunk ranges.
fn chunks(n: usize, parts: usize) -> Vec<(usize, usize)> {
    let parts = parts.clamp(1, n.div_ceil(1 << 15).max(1));
    let size = n.div_ceil(parts);
    (0..parts).map(|i| (i * size, ((i + 1) * size).min(n))).filter(|(a, b)| a < b).collect()
}

/// Run `f` over each range: the first on the calling thread, the others on scoped threads.
pub(crate) fn par_ranges(ranges: &[(usize, usize)], f: impl Fn(usize, usize) + Sync) {
    let Some((&(a0, b0), rest)) = ranges.split_first() else { return };
    if rest.is_empty() {
        return f(a0, b0);
    }
    let f = &f;
    std::thread::scope(|sc| {
        for &(a, b) in rest {
            sc.spawn(move || f(a, b));
        }
        f(a0, b0);
    });
}

/// Raw buffer pointer, sendable across the scoped threads (the chunks are disjoint).
#[derive(Clone, Copy)]
pub(crate) struct Ptr<T>(pub(crate) *mut T);
// SAFETY: `Ptr` is only a raw address; every dereference goes through the `unsafe` methods
// below, whose callers hand each thread its own range.
unsafe impl<T> Send for Ptr<T> {}
// SAFETY: as for `Send`.
unsafe impl<T> Sync for Ptr<T> {}
impl<T> Ptr<T> {
    /// # Safety
    /// `self` must point to an initialised, aligned buffer of at least `b` elements of `T`,
    /// `a <= b`, and nothing else (no other thread, no other slice, no libtorch op) may read or
    /// write elements `a..b` while the returned slice lives.
    pub(crate) unsafe fn slice<'a>(self, a: usize, b: usize) -> &'a mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(a), b - a)
    }

    /// # Safety
    /// As [`Ptr::slice`], except that others may also read (not write) elements `a..b`.
    pub(crate) unsafe fn slice_ref<'a>(self, a: usize, b: usize) -> &'a [T] {
        std::slice::from_raw_parts(self.0.add(a), b - a)
    }
}

/// Validates the buffers of one kernel call before anything is read or written through their
/// data pointers; the first buffer (the parameters) sets the dtype and element count. Each
/// buffer must be:
///
/// - defined, on the CPU, strided (not sparse, not MKL-DNN), contiguous, and not a lazily
///   negated view (`_neg_view`, whose memory holds the negated values);
/// - float32 or float64, the same dtype as the parameters;
/// - exactly as many elements as the parameters;
/// - non-null (when not empty) and aligned for its element type;
/// - disjoint in memory from every other buffer: the byte ranges
///   `[data_ptr, data_ptr + numel · element size)` must not overlap (the same tensor twice, two
///   views of one storage that share elements, or a view of the parameters used as a state
///   buffer all fail). Empty buffers cover no bytes.
///
/// On success, with contiguous layout, `data_ptr` is the first of `numel` consecutive elements
/// of the returned dtype, so the kernels may build one slice per buffer and chunk. What it cannot
/// see: another thread running a libtorch op on the same storage during the call (a data race
/// like that of any two concurrent in-place libtorch ops), and storage that is mapped read-only.
pub(crate) fn check(bufs: &[(&str, &Tensor)]) -> Result<Kind> {
    let err = |name: &str, what: String| OptimError::State(format!("fused kernel buffer `{name}` {what}"));
    let mut expected: Option<(Kind, usize)> = None;
    let mut ranges: Vec<(&str, usize, usize)> = Vec::with_capacity(bufs.len());
    for &(name, t) in bufs {
        // Order matters: each accessor used below panics (inside tch) on tensors that an earlier
        // test rules out: undefined ones, sparse / MKL-DNN layouts.
        if !t.defined() {
            return Err(err(name, "is undefined".into()));
        }
        if t.device() != Device::Cpu {
            return Err(err(name, format!("is on {:?}; the fused kernels run on CPU tensors only", t.device())));
        }
        if t.is_sparse() || t.is_mkldnn() {
            return Err(err(name, "is not a strided (dense) tensor".into()));
        }
        let k = t.f_kind()?;
        if !matches!(k, Kind::Float | Kind::Double) {
            return Err(err(name, format!("has dtype {k:?}; the fused kernels support Float and Double")));
        }
        let n = t.numel();
        let (kind, numel) = *expected.get_or_insert((k, n));
        if k != kind {
            return Err(err(name, format!("has dtype {k:?}, the parameters {kind:?}")));
        }
        if n != numel {
            return Err(err(name, format!("has {n} elements, the parameters {numel}")));
        }
        if !t.is_contiguous() {
            return Err(err(name, "is not contiguous".into()));
        }
        if t.f_is_neg()? {
            return Err(err(name, "is a negated view".into()));
        }
        let elt = k.elt_size_in_bytes();
        let start = t.data_ptr() as usize;
        let len = n.checked_mul(elt).ok_or_else(|| err(name, "is too large".into()))?;
        let end = start.checked_add(len).ok_or_else(|| err(name, "is too large".into()))?;
        if n > 0 && start == 0 {
            return Err(err(name, "has no data".into()));
        }
        if !start.is_multiple_of(elt) {
            return Err(err(name, "is not aligned for its dtype".into()));
        }
        if len > 0 {
            if let Some(&(other, _, _)) = ranges.iter().find(|&&(_, a, b)| start < b && a < end) {
                return Err(err(name, format!("overlaps buffer `{other}` in memory; the kernels need disjoint buffers")));
            }
            ranges.push((name, start, end));
        }
    }
    expected.map(|(k, _)| k).ok_or_else(|| OptimError::State("fused kernel called without buffers".into()))
}

/// One fused Adam(W) step over a bucket: parameters `p`, gradient `g` (only read), moments
/// `m`, `v` and the AMSGrad buffer `mx`, all updated in place.
///
/// Every buffer is validated by [`check`] first; any failure (a CUDA or non-contiguous tensor,
/// another dtype or element count, buffers that share memory) is returned as an error and no
/// element is read or written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn adam(kind: FusedKind, p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, mx: Option<&Tensor>, lr: f64, wd: f64, step: u64) -> Result<()> {
    let FusedKind::Adam { betas: (b1, b2), eps, amsgrad, decoupled } = kind else {
        return Err(OptimError::Config("not an Adam kernel".into()));
    };
    if amsgrad != mx.is_some() {
        return Err(OptimError::State("amsgrad buffer mismatch".into()));
    }
    let mut bufs = vec![("param", p), ("grad", g), ("exp_avg", m), ("exp_avg_sq", v)];
    bufs.extend(mx.map(|x| ("max_exp_avg_sq", x)));
    let dtype = check(&bufs)?;
    let t = step as i32;
    let bc1 = 1.0 - b1.powi(t);
    let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
    let s = Scalars { b1, b2, eps, lr, wd, decoupled, step_size: lr / bc1, bc2_sqrt };
    match dtype {
        // SAFETY: `check` accepted all the buffers just above, with dtype Float (= f32).
        Kind::Float => unsafe { adam_t::<f32>(p, g, m, v, mx, s) },
        // SAFETY: as above, with dtype Double (= f64).
        Kind::Double => unsafe { adam_t::<f64>(p, g, m, v, mx, s) },
        k => return Err(OptimError::Config(format!("fused kernel does not support {k:?}"))),
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Scalars {
    b1: f64,
    b2: f64,
    eps: f64,
    lr: f64,
    wd: f64,
    decoupled: bool,
    step_size: f64,
    bc2_sqrt: f64,
}

/// The Adam kernel over raw buffers, split into chunks across threads.
///
/// # Safety
/// [`check`] must have accepted `p`, `g`, `m`, `v` (and `mx`) together, with `T` the element type
/// of the dtype it returned (`f32` for Float, `f64` for Double): then each is a contiguous,
/// aligned CPU array of `p.numel()` `T`s and no two share memory. Nothing else may access these
/// buffers until this returns.
unsafe fn adam_t<T: Real>(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, mx: Option<&Tensor>, s: Scalars) {
    let n = p.numel();
    let (pp, gp, mp, vp) = (Ptr(p.data_ptr() as *mut T), Ptr(g.data_ptr() as *mut T), Ptr(m.data_ptr() as *mut T), Ptr(v.data_ptr() as *mut T));
    let xp = mx.map(|x| Ptr(x.data_ptr() as *mut T));
    let ranges = chunks(n, kernel_threads(n));
    let decay = T::of(1.0 - s.lr * s.wd);
    let (wd, w1, b2, w2) = (T::of(s.wd), T::of(1.0 - s.b1), T::of(s.b2), T::of(1.0 - s.b2));
    let (bc2, eps, neg_step) = (T::of(s.bc2_sqrt), T::of(s.eps), T::of(-s.step_size));
    let (apply_wd, decoupled) = (s.wd != 0.0, s.decoupled);
    let k = AdamK { decay, wd, w1, b2, w2, bc2, eps, neg_step };
    let run = |a: usize, b: usize| {
        // SAFETY: by this function's contract the buffers are disjoint, aligned CPU arrays of
        // `n` elements of `T` that nothing else touches during the call (`check`, run by
        // `adam`); `chunks` gives each thread its own range `a..b` within `0..n`, so no two
        // slices overlap. `g` is only read.
        let (ps, gs, ms, vs) = unsafe { (pp.slice(a, b), gp.slice_ref(a, b), mp.slice(a, b), vp.slice(a, b)) };
        // SAFETY: as above; `mx` was checked with the others.
        let xs = xp.map(|x| unsafe { x.slice(a, b) });
        match (apply_wd, decoupled, xs) {
            (false, _, None) => dispatch::<T, false, false>(ps, gs, ms, vs, None, k),
            (false, _, Some(x)) => dispatch::<T, false, false>(ps, gs, ms, vs, Some(x), k),
            (true, true, x) => dispatch::<T, true, true>(ps, gs, ms, vs, x, k),
            (true, false, x) => dispatch::<T, true, false>(ps, gs, ms, vs, x, k),
        }
    };
    par_ranges(&ranges, run);
}

#[derive(Clone, Copy)]
struct AdamK<T> {
    decay: T,
    wd: T,
    w1: T,
    b2: T,
    w2: T,
    bc2: T,
    eps: T,
    neg_step: T,
}

/// The Adam loop, monomorphised per weight-decay mode so that it has no branches and LLVM
/// vectorises it (sqrt and div included). No fused multiply-adds: Rust never contracts, so the
/// rounding is the same with or without AVX.
#[inline(always)]
fn adam_loop<T: Real, const WD: bool, const DEC: bool>(ps: &mut [T], gs: &[T], ms: &mut [T], vs: &mut [T], xs: Option<&mut [T]>, k: AdamK<T>) {
    let n = ps.len();
    let (gs, ms, vs) = (&gs[..n], &mut ms[..n], &mut vs[..n]);
    let step = |p: T, g: T, m: T, v: T| {
        let (p, g) = if WD && DEC { (p * k.decay, g) } else if WD { (p, g + k.wd * p) } else { (p, g) };
        // torch's lerp with weight < 0.5: m + w·(g − m)
        (p, m + k.w1 * (g - m), v * k.b2 + k.w2 * g * g)
    };
    match xs {
        None => {
            for i in 0..n {
                let (p, m, v) = step(ps[i], gs[i], ms[i], vs[i]);
                ms[i] = m;
                vs[i] = v;
                ps[i] = p + k.neg_step * m / (v.sqrt() / k.bc2 + k.eps);
            }
        }
        Some(xs) => {
            let xs = &mut xs[..n];
            for i in 0..n {
                let (p, m, v) = step(ps[i], gs[i], ms[i], vs[i]);
                ms[i] = m;
                vs[i] = v;
                let x = if v > xs[i] { v } else { xs[i] };
                xs[i] = x;
                ps[i] = p + k.neg_step * m / (x.sqrt() / k.bc2 + k.eps);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn adam_loop_avx2<T: Real, const WD: bool, const DEC: bool>(ps: &mut [T], gs: &[T], ms: &mut [T], vs: &mut [T], xs: Option<&mut [T]>, k: AdamK<T>) {
    adam_loop::<T, WD, DEC>(ps, gs, ms, vs, xs, k)
}

fn dispatch<T: Real, const WD: bool, const DEC: bool>(ps: &mut [T], gs: &[T], ms: &mut [T], vs: &mut [T], xs: Option<&mut [T]>, k: AdamK<T>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { adam_loop_avx2::<T, WD, DEC>(ps, gs, ms, vs, xs, k) };
    }
    adam_loop::<T, WD, DEC>(ps, gs, ms, vs, xs, k)
}

/// One fused SGD-with-momentum step over a bucket: parameters `p` and momentum buffer `buf`
/// updated in place, gradient `g` only read.
///
/// Every buffer is validated by [`check`] first; any failure is returned as an error and no
/// element is read or written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgd(kind: FusedKind, p: &Tensor, g: &Tensor, buf: &Tensor, lr: f64, wd: f64, step: u64) -> Result<()> {
    let FusedKind::Sgd { momentum, dampening, nesterov } = kind else {
        return Err(OptimError::Config("not an SGD kernel".into()));
    };
    let dtype = check(&[("param", p), ("grad", g), ("momentum_buffer", buf)])?;
    let c = SgdScalars { momentum, dampening, nesterov, lr, wd, first: step == 1 };
    match dtype {
        // SAFETY: `check` accepted the three buffers just above, with dtype Float (= f32).
        Kind::Float => unsafe { sgd_t::<f32>(p, g, buf, c) },
        // SAFETY: as above, with dtype Double (= f64).
        Kind::Double => unsafe { sgd_t::<f64>(p, g, buf, c) },
        k => return Err(OptimError::Config(format!("fused kernel does not support {k:?}"))),
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct SgdScalars {
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    lr: f64,
    wd: f64,
    first: bool,
}

#[derive(Clone, Copy)]
struct SgdK<T> {
    mu: T,
    damp: T,
    wd: T,
    neg_lr: T,
}

/// The SGD loop, monomorphised per mode (weight decay, momentum, first step, Nesterov) so that
/// it has no branches and LLVM vectorises it; the operation order is torch's.
#[inline(always)]
fn sgd_loop<T: Real, const WD: bool, const MOM: bool, const FIRST: bool, const NEST: bool>(ps: &mut [T], gs: &[T], bs: &mut [T], k: SgdK<T>) {
    let n = ps.len();
    let (gs, bs) = (&gs[..n], &mut bs[..n]);
    for i in 0..n {
        let p = ps[i];
        let mut g = gs[i];
        if WD {
            g = g + k.wd * p;
        }
        if MOM {
            let b = if FIRST { g } else { bs[i] * k.mu + k.damp * g };
            bs[i] = b;
            g = if NEST { g + k.mu * b } else { b };
        }
        ps[i] = p + k.neg_lr * g;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sgd_loop_avx2<T: Real, const WD: bool, const MOM: bool, const FIRST: bool, const NEST: bool>(ps: &mut [T], gs: &[T], bs: &mut [T], k: SgdK<T>) {
    sgd_loop::<T, WD, MOM, FIRST, NEST>(ps, gs, bs, k)
}

fn sgd_dispatch<T: Real, const WD: bool, const MOM: bool, const FIRST: bool, const NEST: bool>(ps: &mut [T], gs: &[T], bs: &mut [T], k: SgdK<T>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { sgd_loop_avx2::<T, WD, MOM, FIRST, NEST>(ps, gs, bs, k) };
    }
    sgd_loop::<T, WD, MOM, FIRST, NEST>(ps, gs, bs, k)
}

/// Picks the monomorphised SGD loop for the runtime flags.
#[allow(clippy::too_many_arguments)]
fn sgd_modes<T: Real>(ps: &mut [T], gs: &[T], bs: &mut [T], k: SgdK<T>, wd: bool, mom: bool, first: bool, nest: bool) {
    match (wd, mom, first, nest) {
        (false, false, _, _) => sgd_dispatch::<T, false, false, false, false>(ps, gs, bs, k),
        (true, false, _, _) => sgd_dispatch::<T, true, false, false, false>(ps, gs, bs, k),
        (false, true, true, false) => sgd_dispatch::<T, false, true, true, false>(ps, gs, bs, k),
        (false, true, true, true) => sgd_dispatch::<T, false, true, true, true>(ps, gs, bs, k),
        (false, true, false, false) => sgd_dispatch::<T, false, true, false, false>(ps, gs, bs, k),
        (false, true, false, true) => sgd_dispatch::<T, false, true, false, true>(ps, gs, bs, k),
        (true, true, true, false) => sgd_dispatch::<T, true, true, true, false>(ps, gs, bs, k),
        (true, true, true, true) => sgd_dispatch::<T, true, true, true, true>(ps, gs, bs, k),
        (true, true, false, false) => sgd_dispatch::<T, true, true, false, false>(ps, gs, bs, k),
        (true, true, false, true) => sgd_dispatch::<T, true, true, false, true>(ps, gs, bs, k),
    }
}

/// The SGD kernel over raw buffers, split into chunks across threads.
///
/// # Safety
/// As [`adam_t`]: [`check`] must have accepted `p`, `g` and `buf` together, `T` must be the
/// element type of the dtype it returned, and nothing else may access the buffers meanwhile.
unsafe fn sgd_t<T: Real>(p: &Tensor, g: &Tensor, buf: &Tensor, c: SgdScalars) {
    let n = p.numel();
    let (pp, gp, bp) = (Ptr(p.data_ptr() as *mut T), Ptr(g.data_ptr() as *mut T), Ptr(buf.data_ptr() as *mut T));
    let ranges = chunks(n, kernel_threads(n));
    let k = SgdK { mu: T::of(c.momentum), damp: T::of(1.0 - c.dampening), wd: T::of(c.wd), neg_lr: T::of(-c.lr) };
    let (apply_wd, first, nesterov, has_mom) = (c.wd != 0.0, c.first, c.nesterov, c.momentum != 0.0);
    let run = |a: usize, b: usize| {
        // SAFETY: by this function's contract (`check`, run by `sgd`) the buffers are disjoint,
        // aligned CPU arrays of `n` elements of `T` that nothing else touches during the call;
        // each thread gets its own range `a..b` within `0..n` (`chunks`). `g` is only read.
        let (ps, gs, bs) = unsafe { (pp.slice(a, b), gp.slice_ref(a, b), bp.slice(a, b)) };
        sgd_modes(ps, gs, bs, k, apply_wd, has_mom, first, nesterov);
    };
    par_ranges(&ranges, run);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADAM: FusedKind = FusedKind::Adam { betas: (0.9, 0.999), eps: 1e-8, amsgrad: false, decoupled: true };
    const AMSGRAD: FusedKind = FusedKind::Adam { betas: (0.9, 0.999), eps: 1e-8, amsgrad: true, decoupled: true };
    const SGD: FusedKind = FusedKind::Sgd { momentum: 0.9, dampening: 0.0, nesterov: false };

    fn buf(n: i64, kind: Kind) -> Tensor {
        Tensor::arange(n, (kind, Device::Cpu)).f_div_scalar(n as f64).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap()
    }

    /// `f` must fail with an error that mentions `what`, leaving `p` untouched.
    fn refused(p: &Tensor, what: &str, f: impl FnOnce() -> Result<()>) {
        let before = values(p);
        match f() {
            Err(OptimError::State(msg)) => assert!(msg.contains(what), "error `{msg}` does not mention `{what}`"),
            other => panic!("expected a State error mentioning `{what}`, got {other:?}"),
        }
        assert_eq!(values(p), before, "a refused call changed the parameters");
    }

    fn adam(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor) -> Result<()> {
        super::adam(ADAM, p, g, m, v, None, 1e-3, 0.01, 1)
    }

    #[test]
    fn aliased_buffers_are_refused() {
        let (p, g, m, v) = (buf(64, Kind::Float), buf(64, Kind::Float), buf(64, Kind::Float), buf(64, Kind::Float));
        // The same tensor twice, through another handle, and as the (read-only) gradient.
        refused(&p, "overlaps buffer `param`", || adam(&p, &g, &p, &v));
        refused(&p, "overlaps buffer `exp_avg`", || adam(&p, &g, &m, &m.shallow_clone()));
        refused(&p, "overlaps buffer `param`", || adam(&p, &p.shallow_clone(), &m, &v));
        refused(&p, "overlaps buffer `grad`", || super::sgd(SGD, &p, &g, &g, 0.1, 0.0, 1));
        let x = buf(64, Kind::Float);
        refused(&p, "overlaps buffer `exp_avg_sq`", || super::adam(AMSGRAD, &p, &g, &m, &v, Some(&v), 1e-3, 0.0, 1));
        assert!(super::adam(AMSGRAD, &p, &g, &m, &v, Some(&x), 1e-3, 0.0, 1).is_ok());
    }

    #[test]
    fn overlapping_views_are_refused_adjacent_ones_accepted() {
        let storage = buf(256, Kind::Double);
        let view = |off: i64| storage.narrow(0, off, 64);
        let (p, g) = (view(0), buf(64, Kind::Double));
        // Views sharing one element, or all but one, of the parameters' memory.
        refused(&p, "overlaps buffer `param`", || adam(&p, &g, &view(63), &view(128)));
        refused(&p, "overlaps buffer `param`", || adam(&p, &g, &view(128), &view(1)));
        refused(&p, "overlaps buffer `exp_avg`", || adam(&p, &g, &view(64), &view(100)));
        // The same memory seen as two 2-D views of one storage.
        let square = buf(64, Kind::Double).reshape([8, 8]);
        refused(&p, "overlaps buffer `param`", || super::sgd(SGD, &square, &g.reshape([8, 8]), &square.reshape([8, 8]), 0.1, 0.0, 1));
        // Back-to-back views of one storage share no byte: accepted.
        adam(&p, &g, &view(64), &view(128)).unwrap();
        adam(&view(192), &g, &view(64), &view(128)).unwrap();
    }

    #[test]
    fn non_contiguous_wrong_dtype_and_wrong_size_are_refused() {
        let (p, g, m, v) = (buf(64, Kind::Float), buf(64, Kind::Float), buf(64, Kind::Float), buf(64, Kind::Float));
        let strided = buf(128, Kind::Float).slice(0, 0, 128, 2);
        assert_eq!(strided.numel(), 64);
        refused(&p, "not contiguous", || adam(&p, &g, &strided, &v));
        let transposed = buf(64, Kind::Float).reshape([8, 8]).transpose(0, 1);
        refused(&transposed, "not contiguous", || super::sgd(SGD, &transposed, &g.reshape([8, 8]), &m.reshape([8, 8]), 0.1, 0.0, 1));
        refused(&p, "dtype Double, the parameters Float", || adam(&p, &g, &m, &buf(64, Kind::Double)));
        refused(&p, "dtype Half", || adam(&p, &g, &buf(64, Kind::Half), &v));
        let half = buf(64, Kind::Half);
        refused(&half, "dtype Half", || super::sgd(SGD, &half, &buf(64, Kind::Half), &buf(64, Kind::Half), 0.1, 0.0, 1));
        refused(&p, "dtype Int64", || super::sgd(SGD, &p, &g, &Tensor::zeros([64], (Kind::Int64, Device::Cpu)), 0.1, 0.0, 1));
        refused(&p, "has 63 elements", || adam(&p, &g, &m, &buf(63, Kind::Float)));
        refused(&p, "has 65 elements", || super::sgd(SGD, &p, &buf(65, Kind::Float), &m, 0.1, 0.0, 1));
        refused(&p, "undefined", || adam(&p, &g, &Tensor::new(), &v));
        refused(&p, "negated view", || adam(&p, &g, &m, &buf(64, Kind::Float).f_internal_neg_view().unwrap()));
    }

    #[test]
    fn cuda_buffers_are_refused() {
        if !tch::Cuda::is_available() {
            eprintln!("no CUDA device: skipped");
            return;
        }
        let (p, g, m) = (buf(64, Kind::Float), buf(64, Kind::Float), buf(64, Kind::Float));
        let on_gpu = |t: &Tensor| t.to_device(Device::Cuda(0));
        refused(&p, "CPU tensors only", || adam(&p, &g, &m, &on_gpu(&m)));
        refused(&p, "CPU tensors only", || super::sgd(SGD, &p, &on_gpu(&g), &m, 0.1, 0.0, 1));
        let gp = on_gpu(&p);
        refused(&p, "CPU tensors only", || super::sgd(SGD, &gp, &on_gpu(&g), &on_gpu(&m), 0.1, 0.0, 1));
    }

    #[test]
    fn mismatched_kernel_kind_and_amsgrad_buffer_are_refused() {
        let (p, g, m, v) = (buf(8, Kind::Float), buf(8, Kind::Float), buf(8, Kind::Float), buf(8, Kind::Float));
        assert!(matches!(super::sgd(ADAM, &p, &g, &m, 0.1, 0.0, 1), Err(OptimError::Config(_))));
        assert!(matches!(super::adam(SGD, &p, &g, &m, &v, None, 0.1, 0.0, 1), Err(OptimError::Config(_))));
        refused(&p, "amsgrad", || super::adam(AMSGRAD, &p, &g, &m, &v, None, 1e-3, 0.0, 1));
        refused(&p, "amsgrad", || super::adam(ADAM, &p, &g, &m, &v, Some(&buf(8, Kind::Float)), 1e-3, 0.0, 1));
    }

    #[test]
    fn empty_buffers_are_accepted_and_untouched() {
        let e = || Tensor::zeros([0], (Kind::Float, Device::Cpu));
        adam(&e(), &e(), &e(), &e()).unwrap();
        super::sgd(SGD, &e(), &e(), &e(), 0.1, 0.0, 1).unwrap();
    }

    /// The checked kernels still compute torch's single-tensor AdamW and SGD (the same
    /// operations as tensor ops), over buffers large enough to be split across threads.
    #[test]
    fn checked_kernels_match_tensor_ops() {
        let n = PARALLEL_MIN as i64 + 12345;
        for kind in [Kind::Float, Kind::Double] {
            tch::manual_seed(7);
            let opts = (kind, Device::Cpu);
            let (p, g) = (Tensor::randn([n], opts), Tensor::randn([n], opts));
            let (m, v) = (Tensor::randn([n], opts).f_mul_scalar(0.1).unwrap(), Tensor::rand([n], opts).f_mul_scalar(0.01).unwrap());
            let (lr, wd, step, (b1, b2), eps) = (1e-2, 0.1, 3u64, (0.9, 0.999), 1e-8);
            // torch's `_single_tensor_adam` with decoupled decay, op for op.
            let t = step as i32;
            let (bc1, bc2_sqrt) = (1.0 - f64::powi(b1, t), (1.0 - f64::powi(b2, t)).sqrt());
            let want_m = m.lerp(&g, 1.0 - b1);
            let want_v = v.f_mul_scalar(b2).unwrap() + g.f_mul_scalar(1.0 - b2).unwrap() * &g;
            let denom = want_v.sqrt().f_div_scalar(bc2_sqrt).unwrap().f_add_scalar(eps).unwrap();
            let want_p = p.f_mul_scalar(1.0 - lr * wd).unwrap() + (&want_m / &denom).f_mul_scalar(-lr / bc1).unwrap();
            let (p2, m2, v2) = (p.copy(), m.copy(), v.copy());
            super::adam(ADAM, &p2, &g, &m2, &v2, None, lr, wd, step).unwrap();
            let tol = if kind == Kind::Float { 1e-5 } else { 1e-12 };
            for (got, want) in [(&p2, &want_p), (&m2, &want_m), (&v2, &want_v)] {
                let err = (got - want).abs().max().double_value(&[]) / want.abs().max().double_value(&[]);
                assert!(err <= tol, "{kind:?} adam: max rel err {err:e}");
            }
            // SGD with momentum, weight decay and a running buffer.
            let (p3, b3) = (p.copy(), m.copy());
            let d_p = &g + p.f_mul_scalar(wd).unwrap();
            let want_b = m.f_mul_scalar(0.9).unwrap() + &d_p;
            let want_p = &p + want_b.f_mul_scalar(-lr).unwrap();
            super::sgd(SGD, &p3, &g, &b3, lr, wd, 2).unwrap();
            for (got, want) in [(&p3, &want_p), (&b3, &want_b)] {
                let err = (got - want).abs().max().double_value(&[]) / want.abs().max().double_value(&[]);
                assert!(err <= tol, "{kind:?} sgd: max rel err {err:e}");
            }
        }
    }
}
