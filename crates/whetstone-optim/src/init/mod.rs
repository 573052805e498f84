//! Parameter initialisers, applied to a `VarStore` by parameter-name pattern; see [`apply_init`].

mod fan;
mod rules;

pub use fan::{fan_in_fan_out, FanMode, Nonlinearity};
pub use rules::{apply_init, bert_init, Assigned, InitReport, InitRule};

use crate::error::{OptimError, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// How to fill one tensor. The names and defaults are `torch.nn.init`'s.
///
/// ```
/// use whetstone_optim::Init;
/// tch::manual_seed(0);
/// let w = tch::Tensor::zeros([64, 32], (tch::Kind::Float, tch::Device::Cpu));
/// Init::XavierUniform { gain: 1.0 }.fill(&w)?;
/// let bound = (6.0f64 / (64.0 + 32.0)).sqrt();
/// assert!(w.abs().max().double_value(&[]) <= bound);
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Init {
    /// Leave the tensor as the model built it.
    Keep,
    /// Every element `value`.
    Constant {
        /// The value.
        value: f64,
    },
    /// All 0.
    Zeros,
    /// All 1.
    Ones,
    /// N(mean, std²).
    Normal {
        /// Mean (default 0).
        #[serde(default)]
        mean: f64,
        /// Standard deviation (default 1).
        #[serde(default = "one")]
        std: f64,
    },
    /// U(low, high).
    Uniform {
        /// Lower bound (default 0).
        #[serde(default)]
        low: f64,
        /// Upper bound (default 1).
        #[serde(default = "one")]
        high: f64,
    },
    /// N(mean, std²) conditioned on `[low, high]`, by inverting the CDF as `trunc_normal_`
    /// does. The bounds are absolute values (torch's `a`, `b`); they default to
    /// `mean ∓ 2·std`, the ±2σ of TensorFlow's `truncated_normal` that Google's BERT used.
    /// (torch's own default is ±2 absolute, which for std 0.02 truncates nothing.)
    TruncatedNormal {
        /// Mean (default 0).
        #[serde(default)]
        mean: f64,
        /// Standard deviation of the untruncated normal (default 1).
        #[serde(default = "one")]
        std: f64,
        /// Lower bound (default `mean − 2·std`).
        #[serde(default)]
        low: Option<f64>,
        /// Upper bound (default `mean + 2·std`).
        #[serde(default)]
        high: Option<f64>,
    },
    /// Glorot & Bengio (2010): U(±gain·√(6/(fan_in + fan_out))).
    XavierUniform {
        /// Scale (default 1; see [`Nonlinearity::gain`]).
        #[serde(default = "one")]
        gain: f64,
    },
    /// Glorot & Bengio (2010): N(0, gain²·2/(fan_in + fan_out)).
    XavierNormal {
        /// Scale (default 1).
        #[serde(default = "one")]
        gain: f64,
    },
    /// He et al. (2015): U(±gain·√(3/fan)).
    KaimingUniform(Kaiming),
    /// He et al. (2015): N(0, gain²/fan).
    KaimingNormal(Kaiming),
    /// Saxe et al. (2014): a (semi-)orthogonal matrix from the QR decomposition of a standard
    /// normal one, times `gain`; dimensions after the first are flattened.
    Orthogonal {
        /// Scale (default 1).
        #[serde(default = "one")]
        gain: f64,
    },
}

/// Settings shared by the two Kaiming variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Kaiming {
    /// Preserve the variance over fan-in (default) or fan-out.
    pub mode: FanMode,
    /// The activation after the layer (default `relu`).
    pub nonlinearity: Nonlinearity,
    /// Slope of `leaky-relu` for negative inputs (torch's `a`; default 0).
    pub negative_slope: f64,
}

impl Default for Kaiming {
    fn default() -> Self {
        Self { mode: FanMode::FanIn, nonlinearity: Nonlinearity::Relu, negative_slope: 0.0 }
    }
}

fn one() -> f64 {
    1.0
}

/// Standard normal CDF, with libtorch's `erf` (Python's `math.erf` in `trunc_normal_`).
fn norm_cdf(x: f64) -> Result<f64> {
    Ok((1.0 + Tensor::from(x / 2f64.sqrt()).f_erf()?.f_double_value(&[])?) / 2.0)
}

impl Init {
    /// The standard deviation Xavier and Kaiming use for `shape`, or an error when the shape
    /// has no fans. `None` for the other kinds.
    fn scaled_std(&self, shape: &[i64]) -> Result<Option<f64>> {
        Ok(match self {
            Init::XavierUniform { gain } | Init::XavierNormal { gain } => {
                let (fan_in, fan_out) = fan_in_fan_out(shape)?;
                Some(gain * (2.0 / (fan_in + fan_out) as f64).sqrt())
            }
            Init::KaimingUniform(k) | Init::KaimingNormal(k) => {
                let (fan_in, fan_out) = fan_in_fan_out(shape)?;
                let fan = if k.mode == FanMode::FanIn { fan_in } else { fan_out };
                Some(k.nonlinearity.gain(k.negative_slope) / (fan as f64).sqrt())
            }
            _ => None,
        })
    }

    /// Check that this initialiser can fill a tensor of `shape` (fans exist, bounds are ordered).
    pub fn check(&self, shape: &[i64]) -> Result<()> {
        self.scaled_std(shape)?;
        let bad = |m: String| Err(OptimError::Config(format!("init: {m}")));
        match self {
            Init::Orthogonal { .. } if shape.len() < 2 => bad(format!("orthogonal needs a tensor of 2 or more dimensions, got shape {shape:?}")),
            Init::Normal { std, .. } if std.is_nan() || *std < 0.0 => bad(format!("normal std must be >= 0, got {std}")),
            Init::TruncatedNormal { std, .. } if !(std.is_finite() && *std > 0.0) => bad(format!("truncated-normal std must be > 0, got {std}")),
            Init::Uniform { low, high } if low.is_nan() || high.is_nan() || low > high => bad(format!("uniform needs low <= high, got {low} and {high}")),
            Init::TruncatedNormal { mean, std, low, high } => {
                let (a, b) = (low.unwrap_or(mean - 2.0 * std), high.unwrap_or(mean + 2.0 * std));
                if a < b {
                    Ok(())
                } else {
                    bad(format!("truncated-normal needs low < high, got {a} and {b}"))
                }
            }
            _ => Ok(()),
        }
    }

    /// Draw a new CPU tensor of `shape` and `kind` from torch's global generator, as
    /// `torch.nn.init` would fill `torch.empty(shape, dtype = kind)`. `None` for [`Init::Keep`].
    pub fn sample(&self, shape: &[i64], kind: Kind) -> Result<Option<Tensor>> {
        self.check(shape)?;
        let mut t = Tensor::f_empty(shape, (kind, Device::Cpu))?;
        let std = self.scaled_std(shape)?.unwrap_or(0.0);
        match self {
            Init::Keep => return Ok(None),
            Init::Constant { value } => t = t.f_fill_(*value)?,
            Init::Zeros => t = t.f_zero_()?,
            Init::Ones => t = t.f_fill_(1.0)?,
            Init::Normal { mean, std } => t = t.f_normal_(*mean, *std)?,
            Init::Uniform { low, high } => t = t.f_uniform_(*low, *high)?,
            Init::TruncatedNormal { mean, std, low, high } => {
                let (a, b) = (low.unwrap_or(mean - 2.0 * std), high.unwrap_or(mean + 2.0 * std));
                let (l, u) = (norm_cdf((a - mean) / std)?, norm_cdf((b - mean) / std)?);
                let _ = t.f_uniform_(2.0 * l - 1.0, 2.0 * u - 1.0)?;
                let _ = t.f_erfinv_()?;
                let _ = t.f_mul_scalar_(std * 2f64.sqrt())?;
                let _ = t.f_add_scalar_(*mean)?;
                t = t.f_clamp_(a, b)?;
            }
            Init::XavierUniform { .. } | Init::KaimingUniform(_) => {
                let bound = 3f64.sqrt() * std;
                t = t.f_uniform_(-bound, bound)?;
            }
            Init::XavierNormal { .. } | Init::KaimingNormal(_) => t = t.f_normal_(0.0, std)?,
            Init::Orthogonal { gain } => t = orthogonal(shape, kind, *gain)?,
        }
        Ok(Some(t))
    }

    /// Overwrite `tensor` (any device) in place with a [`Init::sample`] of its shape: the draw
    /// happens on the CPU, so the values do not depend on the device.
    pub fn fill(&self, tensor: &Tensor) -> Result<()> {
        let kind = if tensor.kind() == Kind::Double { Kind::Double } else { Kind::Float };
        if let Some(values) = self.sample(&tensor.size(), kind)? {
            let mut dst = tensor.shallow_clone();
            tch::no_grad(|| dst.f_copy_(&values))?;
        }
        Ok(())
    }
}

/// `torch.nn.init.orthogonal_`, with the QR decomposition in double precision so that
/// `W·Wᵀ = I` holds to float rounding (torch factorises in the tensor's own precision).
fn orthogonal(shape: &[i64], kind: Kind, gain: f64) -> Result<Tensor> {
    let rows = shape[0];
    let cols: i64 = shape[1..].iter().product();
    let normal = Tensor::f_empty([rows, cols], (kind, Device::Cpu))?.f_normal_(0.0, 1.0)?.f_to_kind(Kind::Double)?;
    let flat = if rows < cols { normal.f_transpose(0, 1)? } else { normal };
    let (q, r) = Tensor::f_linalg_qr(&flat, "reduced")?;
    // Fix the signs so the result is uniform over orthogonal matrices (Mezzadri 2007).
    let q = q.f_mul(&r.f_diag(0)?.f_sign()?)?;
    let q = if rows < cols { q.f_transpose(0, 1)? } else { q };
    Ok(q.f_mul_scalar(gain)?.f_to_kind(kind)?.f_reshape(shape)?.f_contiguous()?)
}
