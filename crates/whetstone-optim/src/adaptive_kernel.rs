//! The two CPU passes of the adaptive optimiser's fused update over one flat buffer
//! ([`crate::adaptive`] has the maths, [`crate::adaptive_flat`] the optimiser that calls them).
//!
//! The per-tensor cosines make the update non-elementwise, but only through a few numbers per
//! tensor: ⟨g, m⟩, ‖g‖², ‖m‖², ⟨g, d⟩ and ‖d‖² (d = m/(√v + ε), the previous step's direction).
//! So a step is two passes over the buffer instead of ~25 tensor ops and ~10 host reads per
//! tensor:
//!
//! 1. [`dots`] reads g, m, v once and returns the sums of every member tensor (segment), only
//!    those the step reads ([`Wanted`]): with the momentum adaptation off (the default) that is
//!    ‖g‖², ⟨g,d⟩ and ‖d‖²;
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

/// The sums of one segment: `[⟨g,m⟩, ‖g‖², ‖m‖², ⟨g,d⟩, ‖d‖²]` (⟨g,m⟩ and ‖m‖² are 0 unless
/// asked for, and so are the last two).
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

/// Which sums pass 1 forms besides ‖g‖².
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wanted {
    /// ⟨g, m⟩ and ‖m‖² (the momentum adaptation, and the hypergradient before rectification).
    pub gm: bool,
    /// ⟨g, d⟩ and ‖d‖² for d = m/(√v + ε) (the hypergradient once rectified).
    pub d: bool,
}

/// Pass 1: the sums of every segment of the flat buffers `g`, `m`, `v` (only read): ‖g‖², and
/// the others `wanted` asks for. Sums not asked for are 0 and cost nothing.
pub(crate) fn dots(g: &Tensor, m: &Tensor, v: &Tensor, segments: &[(usize, usize)], eps: f64, wanted: Wanted) -> Result<Vec<Dots>> {
    let dtype = check(&[("grad", g), ("exp_avg", m), ("exp_avg_sq", v)])?;
    check_segments(segments, g.numel())?;
    match dtype {
        // SAFETY: `check` accepted the three buffers just above, with dtype Float (= f32), and
        // the segments lie within their `numel` elements.
        Kind::Float => Ok(unsafe { dots_t::<f32>(g, m, v, segments, eps, wanted, dots_block_f32) }),
        // SAFETY: as above, with dtype Double (= f64).
        Kind::Double => Ok(unsafe { dots_t::<f64>(g, m, v, segments, eps, wanted, dots_block::<f64>) }),
        k => Err(OptimError::Config(format!("adaptive kernel does not support {k:?}"))),
    }
}

/// # Safety
/// [`check`] must have accepted `g`, `m`, `v` with element type `T`, and `segments` must tile
/// `0..g.numel()`; nothing may write these buffers until this returns.
unsafe fn dots_t<T: Real>(g: &Tensor, m: &Tensor, v: &Tensor, segments: &[(usize, usize)], eps: f64, wanted: Wanted, block: fn(&[T], &[T], &[T], T, Wanted) -> Dots) -> Vec<Dots> {
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
            slot[0] = block(gs, ms, vs, eps, wanted);
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

/// One lane group of the sums: adds element `l` of each array to lane `l` of each sum, products
/// first and adds after. The portable form, run for float64 buffers and on CPUs without AVX2;
/// float32 on AVX2 runs [`dots_f32_avx2`], which the compiler does not derive from this by
/// itself (it emitted scalar loads and shuffles).
#[inline(always)]
fn dots_group<T: Real, const GM: bool, const D: bool>(acc: &mut [[f64; LANES]; 5], g: &[T; LANES], m: &[T; LANES], v: &[T; LANES], eps: T) {
    let mut prod = [[0.0f64; LANES]; 5];
    for l in 0..LANES {
        prod[1][l] = (g[l] * g[l]).wide();
        if GM {
            prod[0][l] = (g[l] * m[l]).wide();
            prod[2][l] = (m[l] * m[l]).wide();
        }
        if D {
            // d = m / (√v + ε), as `m.div(v.sqrt() + eps)`.
            let d = m[l] / (v[l].sqrt() + eps);
            prod[3][l] = (g[l] * d).wide();
            prod[4][l] = (d * d).wide();
        }
    }
    for (q, (a, p)) in acc.iter_mut().zip(&prod).enumerate() {
        if (q == 0 || q == 2) && !GM || q >= 3 && !D {
            continue;
        }
        for l in 0..LANES {
            a[l] += p[l];
        }
    }
}

/// The tail of a block (fewer than [`LANES`] elements): its element `l` goes to lane `l`,
/// padded with zeros, which add exact zeros.
#[inline(always)]
fn dots_tail<T: Real, const GM: bool, const D: bool>(acc: &mut [[f64; LANES]; 5], g: &[T], m: &[T], v: &[T], eps: T) {
    if g.is_empty() {
        return;
    }
    let pad = |t: &[T], fill: T| {
        let mut a = [fill; LANES];
        a[..t.len()].copy_from_slice(t);
        a
    };
    // v is padded with ones: √1 + ε > 0, so the padding's d is 0/(1 + ε) = 0, never 0/0.
    dots_group::<T, GM, D>(acc, &pad(g, T::of(0.0)), &pad(m, T::of(0.0)), &pad(v, T::of(1.0)), eps);
}

/// Each sum's lanes added in lane order.
fn sum_lanes(acc: &[[f64; LANES]; 5]) -> Dots {
    let mut out = [0.0f64; 5];
    for (o, lanes) in out.iter_mut().zip(acc) {
        for x in lanes {
            *o += x;
        }
    }
    out
}

#[inline(always)]
fn dots_loop<T: Real, const GM: bool, const D: bool>(gs: &[T], ms: &[T], vs: &[T], eps: T) -> Dots {
    let n = gs.len();
    let (ms, vs) = (&ms[..n], &vs[..n]);
    let mut acc = [[0.0f64; LANES]; 5];
    let (g8, g_tail) = gs.as_chunks::<LANES>();
    let (m8, m_tail) = ms.as_chunks::<LANES>();
    let (v8, v_tail) = vs.as_chunks::<LANES>();
    for ((g, m), v) in g8.iter().zip(m8).zip(v8) {
        dots_group::<T, GM, D>(&mut acc, g, m, v, eps);
    }
    dots_tail::<T, GM, D>(&mut acc, g_tail, m_tail, v_tail, eps);
    sum_lanes(&acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dots_loop_avx2<T: Real, const GM: bool, const D: bool>(gs: &[T], ms: &[T], vs: &[T], eps: T) -> Dots {
    dots_loop::<T, GM, D>(gs, ms, vs, eps)
}

/// Call `$f::<…, GM, D>($args)` with the const flags of `$w` (a [`Wanted`]).
macro_rules! by_wanted {
    ($w:expr, $f:ident :: < $($t:ty),* >, ($($a:expr),*)) => {
        match ($w.gm, $w.d) {
            (true, true) => $f::<$($t,)* true, true>($($a),*),
            (true, false) => $f::<$($t,)* true, false>($($a),*),
            (false, true) => $f::<$($t,)* false, true>($($a),*),
            (false, false) => $f::<$($t,)* false, false>($($a),*),
        }
    };
}

/// The sums of one block, any dtype: the portable loop (compiled for AVX2 where the CPU has it).
fn dots_block<T: Real>(gs: &[T], ms: &[T], vs: &[T], eps: T, wanted: Wanted) -> Dots {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { by_wanted!(wanted, dots_loop_avx2::<T>, (gs, ms, vs, eps)) };
    }
    by_wanted!(wanted, dots_loop::<T>, (gs, ms, vs, eps))
}

/// The sums of one float32 block: AVX2 intrinsics where the CPU has them (the compiler does not
/// vectorise the widening sums of [`dots_loop`] well), else [`dots_block`]. Same lanes, same
/// order, same rounding (IEEE `sqrt` and `div` are correctly rounded in both), so the results
/// are bit-identical.
fn dots_block_f32(gs: &[f32], ms: &[f32], vs: &[f32], eps: f32, wanted: Wanted) -> Dots {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { by_wanted!(wanted, dots_f32_avx2::<>, (gs, ms, vs, eps)) };
    }
    dots_block::<f32>(gs, ms, vs, eps, wanted)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dots_f32_avx2<const GM: bool, const D: bool>(gs: &[f32], ms: &[f32], vs: &[f32], eps: f32) -> Dots {
    use std::arch::x86_64::{__m256, __m256d, _mm256_add_pd, _mm256_add_ps, _mm256_castps256_ps128, _mm256_cvtps_pd, _mm256_div_ps, _mm256_extractf128_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_setzero_pd, _mm256_sqrt_ps, _mm256_storeu_pd};
    const _: () = assert!(LANES == 8, "dots_f32_avx2 keeps lanes 0-3 and 4-7 of each sum in two registers");
    let n = gs.len();
    let (ms, vs) = (&ms[..n], &vs[..n]);
    // acc[q][0] holds lanes 0-3 of sum q, acc[q][1] lanes 4-7.
    let mut acc: [[__m256d; 2]; 5] = [[_mm256_setzero_pd(); 2]; 5];
    // Adds the 8 float32 products `x`, widened, to lanes 0-7 of sum `q`.
    macro_rules! add {
        ($q:expr, $x:expr) => {{
            let x: __m256 = $x;
            acc[$q][0] = _mm256_add_pd(acc[$q][0], _mm256_cvtps_pd(_mm256_castps256_ps128(x)));
            acc[$q][1] = _mm256_add_pd(acc[$q][1], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)));
        }};
    }
    let epsv = _mm256_set1_ps(eps);
    let (g8, g_tail) = gs.as_chunks::<LANES>();
    let (m8, m_tail) = ms.as_chunks::<LANES>();
    let (v8, v_tail) = vs.as_chunks::<LANES>();
    for ((g, m), v) in g8.iter().zip(m8).zip(v8) {
        // SAFETY: each chunk is 8 contiguous, initialised f32 (`as_chunks`); loadu has no
        // alignment requirement.
        let (g, m, v) = unsafe { (_mm256_loadu_ps(g.as_ptr()), _mm256_loadu_ps(m.as_ptr()), _mm256_loadu_ps(v.as_ptr())) };
        add!(1, _mm256_mul_ps(g, g));
        if GM {
            add!(0, _mm256_mul_ps(g, m));
            add!(2, _mm256_mul_ps(m, m));
        }
        if D {
            // d = m / (√v + ε), as `m.div(v.sqrt() + eps)`.
            let d = _mm256_div_ps(m, _mm256_add_ps(_mm256_sqrt_ps(v), epsv));
            add!(3, _mm256_mul_ps(g, d));
            add!(4, _mm256_mul_ps(d, d));
        }
    }
    let mut lanes = [[0.0f64; LANES]; 5];
    for (q, l) in lanes.iter_mut().enumerate() {
        let (lo, hi) = l.split_at_mut(4);
        // SAFETY: `lo` and `hi` hold 4 f64 each; storeu has no alignment requirement.
        unsafe {
            _mm256_storeu_pd(lo.as_mut_ptr(), acc[q][0]);
            _mm256_storeu_pd(hi.as_mut_ptr(), acc[q][1]);
        }
    }
    // The tail and the final sum as in `dots_loop`.
    dots_tail::<f32, GM, D>(&mut lanes, g_tail, m_tail, v_tail, eps);
    sum_lanes(&lanes)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values of mixed sign and scale (v ≥ 0, as a second moment is).
    fn data(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64) as f32 * 2.0 - 1.0
        };
        let mut g = Vec::with_capacity(n);
        let mut m = Vec::with_capacity(n);
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let scale = [1e-3f32, 1.0, 30.0][i % 3];
            g.push(next() * scale);
            m.push(next() * scale * 0.5);
            v.push((next() * scale).powi(2));
        }
        (g, m, v)
    }

    /// The float32 block sums (AVX2 intrinsics on a CPU that has them) are bit-identical to the
    /// portable loop, for every choice of sums, for lengths with and without a tail; a sum
    /// asked for does not depend on which others are, and one not asked for is 0.
    #[test]
    fn float32_block_sums_match_the_portable_loop_bit_for_bit() {
        for (k, &n) in [0usize, 1, 7, 8, 9, 15, 16, 17, 63, 1000, BLOCK - 3, BLOCK].iter().enumerate() {
            let (g, m, v) = data(n, k as u64 + 1);
            let all = dots_block_f32(&g, &m, &v, 1e-8, Wanted { gm: true, d: true });
            for (gm, d) in [(false, false), (false, true), (true, false), (true, true)] {
                let wanted = Wanted { gm, d };
                let fast = dots_block_f32(&g, &m, &v, 1e-8, wanted);
                let portable = by_wanted!(wanted, dots_loop::<f32>, (&g, &m, &v, 1e-8));
                for q in 0..5 {
                    assert_eq!(fast[q].to_bits(), portable[q].to_bits(), "n = {n}, {wanted:?}, sum {q}: {} against {}", fast[q], portable[q]);
                    let asked = q == 1 || (gm && (q == 0 || q == 2)) || (d && q >= 3);
                    let expected = if asked { all[q] } else { 0.0 };
                    assert_eq!(fast[q].to_bits(), expected.to_bits(), "n = {n}, {wanted:?}, sum {q}: {} against {expected}", fast[q]);
                }
            }
            // And the sums are the sums: against a plain float64 accumulation.
            let plain: f64 = g.iter().zip(&m).map(|(a, b)| f64::from(a * b)).sum();
            assert!((all[0] - plain).abs() <= 1e-9 * (1.0 + plain.abs()), "n = {n}: ⟨g,m⟩ {} against {plain}", all[0]);
            let plain: f64 = g.iter().map(|a| f64::from(a * a)).sum();
            assert!((all[1] - plain).abs() <= 1e-9 * (1.0 + plain.abs()), "n = {n}: ‖g‖² {} against {plain}", all[1]);
        }
    }
}
