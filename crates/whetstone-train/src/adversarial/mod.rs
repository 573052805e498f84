//! Adversarial training on the input embeddings, as decorators around any [`Objective`].
//!
//! Each strategy runs its inner objective (cross-entropy, R-Drop, distillation, …) on the
//! trainer's model seen through a perturbation `δ` `[B, T, dim]` of its token embeddings
//! (the model's [`whetstone_models::EmbeddingInput`]: the Transformer, TextCNN and BiLSTM
//! have it). The embedding matrix itself is never written, so nothing needs restoring before
//! the optimiser step: the weights at [`Objective::before_update`] are those of the step's
//! start, bit for bit.
//!
//! * [`Fgm`] (Miyato et al. 2017): one step `r = ε·g/‖g‖` along the clean gradient; the step's
//!   gradient is clean + adversarial.
//! * [`Pgd`] (Madry et al. 2018): `K` steps `δ ← Π_{‖δ‖≤ε}(δ + α·g/‖g‖)`; clean + last
//!   adversarial gradient.
//! * [`FreeLb`] (Zhu et al. 2020): a random start, `K` ascent steps, the parameter gradients
//!   of all `K` averaged.
//!
//! Norms are L2 per example over its `[T, dim]` embeddings, with padding positions masked
//! out of both the gradient and the perturbation (Miyato et al. normalise per sequence; the
//! popular PyTorch FGM snippet normalises the whole embedding matrix instead).
//!
//! [`evaluate_under_pgd`] measures robustness: accuracy under an embedding-space PGD attack.
//!
//! ```
//! use whetstone_train::adversarial::AdversarialConfig;
//! let cfg: AdversarialConfig = toml::from_str("method = \"pgd\"\nepsilon = 0.5\nsteps = 2").unwrap();
//! assert_eq!(cfg, AdversarialConfig::Pgd(whetstone_train::adversarial::PgdConfig { epsilon: 0.5, alpha: 0.03, steps: 2 }));
//! assert!(toml::from_str::<AdversarialConfig>("method = \"fgm\"\nepsilon = 0.0").unwrap().validate().is_err());
//! ```

mod attack;
mod fgm;
mod freelb;
mod perturbed;
mod pgd;

pub use attack::{evaluate_under_pgd, PgdAttack, Robustness};
pub use fgm::{Fgm, FgmConfig};
pub use freelb::{FreeLb, FreeLbConfig};
pub use pgd::{Pgd, PgdConfig};

use crate::error::{Result, TrainError};
use crate::objective::Objective;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use whetstone_data::Batch;
use whetstone_models::{require_embedding_input, TextClassifier};

/// A recipe's `[adversarial]` section: the strategy, chosen by `method`, and its settings.
///
/// ```toml
/// [adversarial]
/// method = "freelb"   # or "fgm", "pgd"
/// steps = 3
/// alpha = 0.03
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum AdversarialConfig {
    /// The fast gradient method, [`Fgm`].
    Fgm(FgmConfig),
    /// Projected gradient descent, [`Pgd`].
    Pgd(PgdConfig),
    /// Free large-batch adversarial training, [`FreeLb`].
    Freelb(FreeLbConfig),
}

impl AdversarialConfig {
    /// The method's name in errors and logs (`FGM`, `PGD`, `FreeLB`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Fgm(_) => "FGM",
            Self::Pgd(_) => "PGD",
            Self::Freelb(_) => "FreeLB",
        }
    }

    /// Check the settings; the error names the field (`adversarial.epsilon`) and the method.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Fgm(c) => c.validate(),
            Self::Pgd(c) => c.validate(),
            Self::Freelb(c) => c.validate(),
        }
    }

    /// `inner` made adversarial for `model`: the settings are checked and the model must have
    /// input embeddings (a clear error otherwise, before any training).
    pub fn wrap(&self, inner: Box<dyn Objective>, model: &dyn TextClassifier) -> Result<Box<dyn Objective>> {
        self.validate()?;
        require_embedding_input(model, &format!("{} adversarial training ([adversarial] method = \"{}\")", self.name(), self.name().to_lowercase()))?;
        Ok(match self {
            Self::Fgm(c) => Box::new(Fgm::new(inner, c.clone())?),
            Self::Pgd(c) => Box::new(Pgd::new(inner, c.clone())?),
            Self::Freelb(c) => Box::new(FreeLb::new(inner, c.clone())?),
        })
    }
}

/// An error for `adversarial.<field>` of `method`.
fn invalid(method: &str, field: &str, msg: impl std::fmt::Display) -> TrainError {
    TrainError::Config(format!("adversarial.{field} {msg} (method = \"{method}\")"))
}

/// `value` must be finite and > 0.
fn positive(method: &str, field: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(invalid(method, field, format!("must be a finite number > 0, got {value}")))
    }
}

/// `value` must be finite and ≥ 0.
fn non_negative(method: &str, field: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(invalid(method, field, format!("must be a finite number ≥ 0, got {value}")))
    }
}

/// The real-token mask of `batch` as `[B, T, 1]` float32, to broadcast over embeddings.
pub(crate) fn token_mask(batch: &Batch) -> Result<Tensor> {
    Ok(batch.attention_mask.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?)
}

/// A zero perturbation `[B, T, dim]` for `batch` on `model`'s embeddings.
pub(crate) fn zero_delta(model: &dyn TextClassifier, batch: &Batch, strategy: &str) -> Result<Tensor> {
    let w = require_embedding_input(model, strategy)?.word_embeddings();
    let (ids, dim) = (batch.input_ids.size(), w.size()[1]);
    Ok(Tensor::f_zeros([ids[0], ids[1], dim], (Kind::Float, w.device()))?)
}

/// L2 norm of each example of `t` `[B, …]`, shaped `[B, 1, 1]` to broadcast.
pub(crate) fn example_norms(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_flatten(1, -1)?.f_norm_scalaropt_dim(2, [1i64].as_slice(), false)?.f_view([-1, 1, 1])?)
}

/// The largest per-example L2 norm of `delta`.
pub(crate) fn max_norm(delta: &Tensor) -> Result<f64> {
    Ok(example_norms(delta)?.f_max()?.f_double_value(&[])?)
}

/// `g` restricted to real tokens and scaled to unit L2 norm per example: `g·m / ‖g·m‖` (a
/// zero gradient stays zero).
pub(crate) fn unit_direction(g: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let g = g.f_to_kind(Kind::Float)?.f_mul(mask)?;
    let n = example_norms(&g)?.f_clamp_min(1e-12)?;
    Ok(g.f_div(&n)?)
}

/// Projection onto the ε-ball per example: `δ · min(1, ε/‖δ‖)`.
pub(crate) fn project(delta: &Tensor, epsilon: f64) -> Result<Tensor> {
    let n = example_norms(delta)?.f_clamp_min(1e-12)?;
    let factor = n.f_reciprocal()?.f_mul_scalar(epsilon)?.f_clamp_max(1.0)?;
    Ok(delta.f_mul(&factor)?)
}
