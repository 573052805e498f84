//! One-pass CPU kernels for Adam(W) and SGD over flat buffers.
//!
//! With all parameters in one contiguous buffer, the update can be a single loop that reads
//! θ, g, m, v once and writes them once (torch's `fused=True`), instead of ~10 whole-buffer
//! kernels. The per-element arithmetic follows torch's single-tensor (for-loop) code operation
//! by operation, with every intermediate rounded to the parameter dtype as torch rounds it, so
//! the result is the same as the tensor-op path. Buffers of 8M elements or more are split
//! across `tch::get_num_threads()` threads; smaller ones run on the calling thread (see
//! [`PARALLEL_MIN`]). Used only for contiguous CPU float32 / float64 buffers;
//! anything else takes the tensor-op path.

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

trait Real: Copy + Send + Sync + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self> + std::ops::Div<Output = Self> + PartialOrd {
    fn of(x: f64) -> Self;
    fn sqrt(self) -> Self;
}
impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}
impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
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

fn kernel_threads(n: usize) -> usize {
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
fn par_ranges(ranges: &[(usize, usize)], f: impl Fn(usize, usize) + Sync) {
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
struct Ptr<T>(*mut T);
unsafe impl<T> Send for Ptr<T> {}
unsafe impl<T> Sync for Ptr<T> {}
impl<T> Ptr<T> {
    /// # Safety
    /// `a..b` must lie inside the buffer and no other thread may touch it.
    unsafe fn slice<'a>(self, a: usize, b: usize) -> &'a mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(a), b - a)
    }
}

fn check(ts: &[&Tensor], like: &Tensor) -> Result<()> {
    for t in ts {
        if t.kind() != like.kind() || t.device() != like.device() || !t.is_contiguous() || t.numel() != like.numel() {
            return Err(OptimError::State("fused kernel buffers disagree in kind, device, layout or size".into()));
        }
    }
    Ok(())
}

/// One fused Adam(W) step over a bucket. `mx` is the AMSGrad buffer.
#[allow(clippy::too_many_arguments)]
pub fn adam(kind: FusedKind, p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, mx: Option<&Tensor>, lr: f64, wd: f64, step: u64) -> Result<()> {
    let FusedKind::Adam { betas: (b1, b2), eps, amsgrad, decoupled } = kind else {
        return Err(OptimError::Config("not an Adam kernel".into()));
    };
    check(&[g, m, v], p)?;
    if amsgrad != mx.is_some() {
        return Err(OptimError::State("amsgrad buffer mismatch".into()));
    }
    if let Some(mx) = mx {
        check(&[mx], p)?;
    }
    let t = step as i32;
    let bc1 = 1.0 - b1.powi(t);
    let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
    let s = Scalars { b1, b2, eps, lr, wd, decoupled, step_size: lr / bc1, bc2_sqrt };
    match p.kind() {
        Kind::Float => adam_t::<f32>(p, g, m, v, mx, s),
        Kind::Double => adam_t::<f64>(p, g, m, v, mx, s),
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

fn adam_t<T: Real>(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, mx: Option<&Tensor>, s: Scalars) {
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
        // SAFETY: the five buffers are distinct allocations of `n` elements (checked by the
        // caller) and the ranges handed to the threads are disjoint.
        let (ps, gs, ms, vs) = unsafe { (pp.slice(a, b), gp.slice(a, b), mp.slice(a, b), vp.slice(a, b)) };
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

/// One fused SGD-with-momentum step over a bucket.
#[allow(clippy::too_many_arguments)]
pub fn sgd(kind: FusedKind, p: &Tensor, g: &Tensor, buf: &Tensor, lr: f64, wd: f64, step: u64) -> Result<()> {
    let FusedKind::Sgd { momentum, dampening, nesterov } = kind else {
        return Err(OptimError::Config("not an SGD kernel".into()));
    };
    check(&[g, buf], p)?;
    let c = SgdScalars { momentum, dampening, nesterov, lr, wd, first: step == 1 };
    match p.kind() {
        Kind::Float => sgd_t::<f32>(p, g, buf, c),
        Kind::Double => sgd_t::<f64>(p, g, buf, c),
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

fn sgd_t<T: Real>(p: &Tensor, g: &Tensor, buf: &Tensor, c: SgdScalars) {
    let n = p.numel();
    let (pp, gp, bp) = (Ptr(p.data_ptr() as *mut T), Ptr(g.data_ptr() as *mut T), Ptr(buf.data_ptr() as *mut T));
    let ranges = chunks(n, kernel_threads(n));
    let k = SgdK { mu: T::of(c.momentum), damp: T::of(1.0 - c.dampening), wd: T::of(c.wd), neg_lr: T::of(-c.lr) };
    let (apply_wd, first, nesterov, has_mom) = (c.wd != 0.0, c.first, c.nesterov, c.momentum != 0.0);
    let run = |a: usize, b: usize| {
        // SAFETY: distinct buffers of `n` elements, disjoint ranges (see `adam_t`).
        let (ps, gs, bs) = unsafe { (pp.slice(a, b), gp.slice(a, b), bp.slice(a, b)) };
        sgd_modes(ps, gs, bs, k, apply_wd, has_mom, first, nesterov);
    };
    par_ranges(&ranges, run);
}
