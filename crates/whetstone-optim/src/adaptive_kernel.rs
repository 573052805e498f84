//! The two CPU passes of the adaptive optimiser's fused update over one flat buffer
//! ([`crate::adaptive`] has the maths, [`crate::adaptive_flat`] the optimiser that calls them).
//!
//! The per-tensor cosines make the update non-elementwise, but only through a few numbers per
//! tensor: ⟨g, m⟩, ‖g‖², ‖m‖², ⟨g, d⟩ and ‖d‖² (d = m/(√v + ε), the previous step's direction).
//! So a step is two passes over the buffer instead of ~25 tensor ops and ~10 host reads per
//! tensor:
//!
//! 1. [`dots`] reads g, m, v once and returns the five sums of every member tensor (segment);
//! 2. the caller turns them into each tensor's β₁, bias correction and learning-rate multiplier
//!    (the same float64 scalar code as the per-tensor path, [`crate::AdaptiveConfig`]);
//! 3. [`update`] reads θ, g, m, v once and writes θ, m, v, with those scalars per segment.
//!
//! Sums are accumulated in float64 from products rounded to the buffer's dtype, as the
//! per-tensor path's `(a * b).sum(Double)`, in a fixed order: each segment is cut into blocks of
//! [`BLOCK`] elements, each block is summed in 8 interleaved lanes, and blocks are added in order.
//! The order does not depend on the number of threads, so a run is reproducible bit for bit.
//! Buffers of 8M elements or more are split across threads by blocks, as [`crate::fused`] does.
//! The elementwise arithmetic follows the per-tensor path's tensor ops one by one, in the
//! buffer's dtype (no fused multiply-adds), so the two paths agree to rounding.

use crate::error::{OptimError, Result};
use crate::fused::{check, kernel_threads, par_ranges, Ptr, Real};
use tch::{Kind, Tensor};

/// Elements per block of a segment (the unit of work of a thread, and of the summation order).
const BLOCK: usize = 1 << 15;

/// Interleaved accumulators per sum (lets the compiler vectorise a float64 reduction without
/// reassociating it).
const LANES: usize = 8;

/// The sums of one segment: `[⟨g,m⟩, ‖g‖², ‖m‖², ⟨g,d⟩, ‖d‖²]` (the last two 0 unless asked for).
pub(crate) type Dots = [f64; 5];

/// The blocks `(segment, start, end)` of `segments` (`(offset, len)` in the buffer).
fn blocks(segments: &[(usize, usize)]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for (s, &(off, len)) in segments.iter().enumerate() {
        let mut a = off;
        while a < off + len {
            let b = (a + BLOCK).min(off + len);
            out.push((s, a, b));
            a = b;
        }
    }
    out
}

/// Split `n_blocks` blocks into at most `threads` contiguous ranges of block indices.
fn block_ranges(n_blocks: usize, threads: usize) -> Vec<(usize, usize)> {
    let parts = threads.clamp(1, n_blocks.max(1));
    let size = n_blocks.div_ceil(parts);
    (0..parts).map(|i| (i * size, ((i + 1) * size).min(n_blocks))).filter(|(a, b)| a < b).collect()
}

/// Check that `segments` tile `0..n` in order without gaps or overlaps.
fn check_segments(segments: &[(usize, usize)], n: usize) -> Result<()> {
    let mut at = 0;
    for &(off, len) in segments {
        if off != at {
            return Err(OptimError::State(format!("adaptive kernel: segment at {off} does not start where the previous ended ({at})")));
        }
        at = off + len;
    }
    if at != n {
        return Err(OptimError::State(format!("adaptive kernel: segments cover {at} of {n} elements")));
    }
    Ok(())
}

/// Pass 1: the sums of every segment of the flat buffers `g`, `m`, `v` (only read). With
/// `with_d`, also ⟨g, d⟩ and ‖d‖² for d = m/(√v + ε).
pub(crate) fn dots(g: &Tensor, m: &Tensor, v: &Tensor, segments: &[(usize, usize)], eps: f64, with_d: bool) -> Result<Vec<Dots>> {
    let dtype = check(&[("grad", g), ("exp_avg", m), ("exp_avg_sq", v)])?;
    check_segments(segments, g.numel())?;
    match dtype {
        // SAFETY: `check` accepted the three buffers just above, with dtype Float (= f32), and
        // the segments lie within their `numel` elements.
        Kind::Float => Ok(unsafe { dots_t::<f32>(g, m, v, segments, eps, with_d) }),
        // SAFETY: as above, with dtype Double (= f64).
        Kind::Double => Ok(unsafe { dots_t::<f64>(g, m, v, segments, eps, with_d) }),
        k => Err(OptimError::Config(format!("adaptive kernel does not support {k:?}"))),
    }
}

/// # Safety
/// [`check`] must have accepted `g`, `m`, `v` with element type `T`, and `segments` must tile
/// `0..g.numel()`; nothing may write these buffers until this returns.
unsafe fn dots_t<T: Real>(g: &Tensor, m: &Tensor, v: &Tensor, segments: &[(usize, usize)], eps: f64, with_d: bool) -> Vec<Dots> {
    let (gp, mp, vp) = (Ptr(g.data_ptr() as *mut T), Ptr(m.data_ptr() as *mut T), Ptr(v.data_ptr() as *mut T));
    let blocks = blocks(segments);
    let mut partial = vec![[0.0f64; 5]; blocks.len()];
    let out = Ptr(partial.as_mut_ptr());
    let eps = T::of(eps);
    let ranges = block_ranges(blocks.len(), kernel_threads(g.numel()));
    par_ranges(&ranges, |i0, i1| {
        for (i, &(_, a, b)) in blocks.iter().enumerate().take(i1).skip(i0) {
            // SAFETY: the buffers hold `numel` elements of `T` and `a..b` lies within them (the
            // segments tile `0..numel`); they are only read here. Each block index `i` belongs
            // to exactly one thread's range, so the writes to `partial[i]` do not overlap.
            let (gs, ms, vs, slot) = unsafe { (gp.slice_ref(a, b), mp.slice_ref(a, b), vp.slice_ref(a, b), out.slice(i, i + 1)) };
            slot[0] = if with_d { dots_dispatch::<T, true>(gs, ms, vs, eps) } else { dots_dispatch::<T, false>(gs, ms, vs, eps) };
        }
    });
    let mut sums = vec![[0.0f64; 5]; segments.len()];
    for (&(s, _, _), p) in blocks.iter().zip(&partial) {
        for q in 0..5 {
            sums[s][q] += p[q];
        }
    }
    sums
}

#[inline(always)]
fn dots_loop<T: Real, const D: bool>(gs: &[T], ms: &[T], vs: &[T], eps: T) -> Dots {
    let n = gs.len();
    let (ms, vs) = (&ms[..n], &vs[..n]);
    let mut acc = [[0.0f64; LANES]; 5];
    let whole = n / LANES * LANES;
    let mut add = |lane: usize, g: T, m: T, v: T| {
        acc[0][lane] += (g * m).wide();
        acc[1][lane] += (g * g).wide();
        acc[2][lane] += (m * m).wide();
        if D {
            // d = m / (√v + ε), as `m.div(v.sqrt() + eps)`.
            let d = m / (v.sqrt() + eps);
            acc[3][lane] += (g * d).wide();
            acc[4][lane] += (d * d).wide();
        }
    };
    for i in (0..whole).step_by(LANES) {
        for l in 0..LANES {
            add(l, gs[i + l], ms[i + l], vs[i + l]);
        }
    }
    for i in whole..n {
        add(i - whole, gs[i], ms[i], vs[i]);
    }
    let mut out = [0.0f64; 5];
    for q in 0..5 {
        for l in 0..LANES {
            out[q] += acc[q][l];
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dots_loop_avx2<T: Real, const D: bool>(gs: &[T], ms: &[T], vs: &[T], eps: T) -> Dots {
    dots_loop::<T, D>(gs, ms, vs, eps)
}

fn dots_dispatch<T: Real, const D: bool>(gs: &[T], ms: &[T], vs: &[T], eps: T) -> Dots {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { dots_loop_avx2::<T, D>(gs, ms, vs, eps) };
    }
    dots_loop::<T, D>(gs, ms, vs, eps)
}

/// What a step does once the moments have moved (step 3 of [`crate::adaptive`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Direction {
    /// `d = rect · m̂ · √(1−β₂ᵗ)/(√v + ε)`.
    Rectified {
        /// The rectifier rₜ.
        rect: f64,
        /// √(1−β₂ᵗ).
        sqrt_bc2: f64,
    },
    /// `d = m̂` (torch's early momentum-SGD steps).
    Momentum,
    /// `d = 0` (weight decay still applies).
    Zero,
}

/// The scalars of one segment's update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SegmentStep {
    /// β₁ of this step.
    pub beta1: f64,
    /// Πβ₁ including this step's.
    pub beta1_prod: f64,
    /// The learning-rate multiplier α, `None` when log α is exactly 0 (no multiplication).
    pub mult: Option<f64>,
}

/// The scalars shared by every segment of a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StepArgs {
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Nesterov look-ahead.
    pub nesterov: bool,
    /// Step 3's direction.
    pub direction: Direction,
    /// The scheduled learning rate η.
    pub lr: f64,
    /// The bucket's decoupled weight decay λ.
    pub weight_decay: f64,
}

/// Pass 2: moments, direction and parameter update of every segment, in place
/// (`θ ← θ − η(α d + λθ)`); `g` is only read.
pub(crate) fn update(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, segments: &[(usize, usize)], steps: &[SegmentStep], args: &StepArgs) -> Result<()> {
    let dtype = check(&[("param", p), ("grad", g), ("exp_avg", m), ("exp_avg_sq", v)])?;
    check_segments(segments, p.numel())?;
    if steps.len() != segments.len() {
        return Err(OptimError::State(format!("adaptive kernel: {} segment steps for {} segments", steps.len(), segments.len())));
    }
    match dtype {
        // SAFETY: `check` accepted the four buffers just above, with dtype Float (= f32), and
        // the segments lie within their `numel` elements.
        Kind::Float => unsafe { update_t::<f32>(p, g, m, v, segments, steps, args) },
        // SAFETY: as above, with dtype Double (= f64).
        Kind::Double => unsafe { update_t::<f64>(p, g, m, v, segments, steps, args) },
        k => return Err(OptimError::Config(format!("adaptive kernel does not support {k:?}"))),
    }
    Ok(())
}

/// Per-segment constants of the update loop, in the buffer's dtype.
#[derive(Clone, Copy)]
struct UpdK<T> {
    w1: T,
    b2: T,
    w2: T,
    /// Nesterov: β₁/(1 − Πβ₁·β₁) and (1 − β₁)/(1 − Πβ₁); else 1 − Πβ₁ (a divisor) and unused.
    c_m: T,
    c_g: T,
    eps: T,
    sqrt_bc2: T,
    rect: T,
    mult: T,
    wd: T,
    neg_lr: T,
}

/// # Safety
/// [`check`] must have accepted the four buffers with element type `T`, and `segments` must
/// tile `0..p.numel()`; nothing else may access them until this returns.
unsafe fn update_t<T: Real>(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, segments: &[(usize, usize)], steps: &[SegmentStep], a: &StepArgs) {
    let (pp, gp, mp, vp) = (Ptr(p.data_ptr() as *mut T), Ptr(g.data_ptr() as *mut T), Ptr(m.data_ptr() as *mut T), Ptr(v.data_ptr() as *mut T));
    let consts: Vec<UpdK<T>> = steps
        .iter()
        .map(|s| {
            let b1 = s.beta1;
            let (c_m, c_g) = if a.nesterov { (b1 / (1.0 - s.beta1_prod * b1), (1.0 - b1) / (1.0 - s.beta1_prod)) } else { (1.0 - s.beta1_prod, 0.0) };
            let (rect, sqrt_bc2) = match a.direction {
                Direction::Rectified { rect, sqrt_bc2 } => (rect, sqrt_bc2),
                _ => (1.0, 1.0),
            };
            UpdK {
                w1: T::of(1.0 - b1),
                b2: T::of(a.beta2),
                w2: T::of(1.0 - a.beta2),
                c_m: T::of(c_m),
                c_g: T::of(c_g),
                eps: T::of(a.eps),
                sqrt_bc2: T::of(sqrt_bc2),
                rect: T::of(rect),
                mult: T::of(s.mult.unwrap_or(1.0)),
                wd: T::of(a.weight_decay),
                neg_lr: T::of(-a.lr),
            }
        })
        .collect();
    let blocks = blocks(segments);
    let ranges = block_ranges(blocks.len(), kernel_threads(p.numel()));
    let mode = Mode { nesterov: a.nesterov, direction: a.direction, weight_decay: a.weight_decay != 0.0 };
    par_ranges(&ranges, |i0, i1| {
        for &(s, lo, hi) in blocks.iter().take(i1).skip(i0) {
            // SAFETY: by this function's contract the buffers are disjoint CPU arrays of `numel`
            // elements of `T` that nothing else touches during the call; `lo..hi` lies within
            // them, and each block belongs to exactly one thread's range, so no two slices
            // overlap. `g` is only read.
            let (ps, gs, ms, vs) = unsafe { (pp.slice(lo, hi), gp.slice_ref(lo, hi), mp.slice(lo, hi), vp.slice(lo, hi)) };
            upd_dispatch(ps, gs, ms, vs, consts[s], mode, steps[s].mult.is_some());
        }
    });
}

#[derive(Clone, Copy)]
struct Mode {
    nesterov: bool,
    direction: Direction,
    weight_decay: bool,
}

/// The update loop for one block: each line is one tensor op of the per-tensor path, in order.
/// `DIR`: 0 rectified, 1 momentum, 2 zero.
#[inline(always)]
fn upd_loop<T: Real, const NEST: bool, const DIR: u8, const MULT: bool, const WD: bool>(ps: &mut [T], gs: &[T], ms: &mut [T], vs: &mut [T], k: UpdK<T>) {
    let n = ps.len();
    let (gs, ms, vs) = (&gs[..n], &mut ms[..n], &mut vs[..n]);
    let one = T::of(1.0);
    let small = k.w1 < T::of(0.5) && T::of(-0.5) < k.w1;
    for i in 0..n {
        let (p, g) = (ps[i], gs[i]);
        // m.lerp_(g, 1 − β₁) (torch's two-sided formula)
        let m = if small { ms[i] + k.w1 * (g - ms[i]) } else { g - (g - ms[i]) * (one - k.w1) };
        // v ← β₂ v + ((1 − β₂) g) g
        let v = vs[i] * k.b2 + g * k.w2 * g;
        ms[i] = m;
        vs[i] = v;
        let m_hat = if NEST { m * k.c_m + g * k.c_g } else { m / k.c_m };
        let mut d = match DIR {
            0 => m_hat * ((one / (v.sqrt() + k.eps)) * k.sqrt_bc2) * k.rect,
            1 => m_hat,
            _ => T::of(0.0),
        };
        if MULT {
            d = d * k.mult;
        }
        let u = if WD { d + p * k.wd } else { d };
        ps[i] = p + u * k.neg_lr;
    }
}

macro_rules! upd_variants {
    ($ps:ident, $gs:ident, $ms:ident, $vs:ident, $k:ident, $mode:ident, $mult:ident, $f:ident) => {
        match ($mode.nesterov, $mode.direction, $mult, $mode.weight_decay) {
            (true, Direction::Rectified { .. }, true, true) => $f::<T, true, 0, true, true>($ps, $gs, $ms, $vs, $k),
            (true, Direction::Rectified { .. }, true, false) => $f::<T, true, 0, true, false>($ps, $gs, $ms, $vs, $k),
            (true, Direction::Rectified { .. }, false, true) => $f::<T, true, 0, false, true>($ps, $gs, $ms, $vs, $k),
            (true, Direction::Rectified { .. }, false, false) => $f::<T, true, 0, false, false>($ps, $gs, $ms, $vs, $k),
            (false, Direction::Rectified { .. }, true, true) => $f::<T, false, 0, true, true>($ps, $gs, $ms, $vs, $k),
            (false, Direction::Rectified { .. }, true, false) => $f::<T, false, 0, true, false>($ps, $gs, $ms, $vs, $k),
            (false, Direction::Rectified { .. }, false, true) => $f::<T, false, 0, false, true>($ps, $gs, $ms, $vs, $k),
            (false, Direction::Rectified { .. }, false, false) => $f::<T, false, 0, false, false>($ps, $gs, $ms, $vs, $k),
            // The first steps (momentum SGD or no step) run a handful of times: no variants for
            // the multiplier or weight decay.
            (true, Direction::Momentum, mult, wd) => upd_generic::<T, true, 1>($ps, $gs, $ms, $vs, $k, mult, wd),
            (false, Direction::Momentum, mult, wd) => upd_generic::<T, false, 1>($ps, $gs, $ms, $vs, $k, mult, wd),
            (true, Direction::Zero, mult, wd) => upd_generic::<T, true, 2>($ps, $gs, $ms, $vs, $k, mult, wd),
            (false, Direction::Zero, mult, wd) => upd_generic::<T, false, 2>($ps, $gs, $ms, $vs, $k, mult, wd),
        }
    };
}

fn upd_generic<T: Real, const NEST: bool, const DIR: u8>(ps: &mut [T], gs: &[T], ms: &mut [T], vs: &mut [T], k: UpdK<T>, mult: bool, wd: bool) {
    match (mult, wd) {
        (true, true) => upd_loop::<T, NEST, DIR, true, true>(ps, gs, ms, vs, k),
        (true, false) => upd_loop::<T, NEST, DIR, true, false>(ps, gs, ms, vs, k),
        (false, true) => upd_loop::<T, NEST, DIR, false, true>(ps, gs, ms, vs, k),
        (false, false) => upd_loop::<T, NEST, DIR, false, false>(ps, gs, ms, vs, k),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn upd_avx2<T: Real>(ps: &mut [T], gs: &[T], ms: &mut [T], vs: &mut [T], k: UpdK<T>, mode: Mode, mult: bool) {
    upd_variants!(ps, gs, ms, vs, k, mode, mult, upd_loop)
}

fn upd_dispatch<T: Real>(ps: &mut [T], gs: &[T], ms: &mut [T], vs: &mut [T], k: UpdK<T>, mode: Mode, mult: bool) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { upd_avx2::<T>(ps, gs, ms, vs, k, mode, mult) };
    }
    upd_variants!(ps, gs, ms, vs, k, mode, mult, upd_loop)
}
