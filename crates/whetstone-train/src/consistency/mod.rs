//! Consistency regularisation and embedding-level augmentation: classification objectives
//! that replace plain cross-entropy.
//!
//! * [`RDrop`] (Liang et al. 2021): two dropout passes, their symmetric KL.
//! * [`Mixup`] (TMix-style, Chen et al. 2020): convex combinations of two examples'
//!   embeddings (or the Transformer's final hidden states) and of their losses.
//! * [`Cutoff`] (Shen et al. 2020): a view with tokens, a span or features cut from the
//!   embeddings, with its own cross-entropy and a Jensen–Shannon consistency term.
//! * [`Smart`] (Jiang et al. 2020): SMART's smoothness-inducing adversarial regulariser,
//!   the symmetric KL between predictions at the embeddings and at a small adversarial
//!   perturbation of them.
//!
//! Each is a base objective, so an adversarial strategy ([`crate::adversarial`]) can wrap it.
//! Their randomness comes from the step's random stream ([`crate::StepContext::rng`]) and
//! torch's generator, both reseeded by the loop from `(seed, step)`: training is
//! deterministic and resumes bit-identically. None keeps state across steps.
//!
//! ```
//! use whetstone_train::consistency::RegularizeConfig;
//! let cfg: RegularizeConfig = toml::from_str("method = \"rdrop\"\nalpha = 4.0").unwrap();
//! assert_eq!(cfg.name(), "R-Drop");
//! assert!(toml::from_str::<RegularizeConfig>("method = \"mixup\"\nalpha = -1.0").unwrap().validate().is_err());
//! ```

mod cutoff;
mod mixup;
mod rdrop;
mod smart;

pub use cutoff::{Cutoff, CutoffConfig, CutoffKind};
pub use mixup::{beta_sample, Mixup, MixupConfig, MixupOn};
pub use rdrop::{symmetric_kl, RDrop, RDropConfig};
pub use smart::{Smart, SmartConfig};

use crate::error::{Result, TrainError};
use crate::objective::{CrossEntropy, Objective};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use whetstone_models::TextClassifier;

/// A recipe's `[regularize]` section: the classification objective that replaces plain
/// cross-entropy, chosen by `method`.
///
/// ```toml
/// [regularize]
/// method = "cutoff"   # or "rdrop", "mixup", "smart"
/// kind = "span"
/// ratio = 0.1
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum RegularizeConfig {
    /// [`RDrop`].
    Rdrop(RDropConfig),
    /// [`Mixup`].
    Mixup(MixupConfig),
    /// [`Cutoff`].
    Cutoff(CutoffConfig),
    /// [`Smart`].
    Smart(SmartConfig),
}

impl RegularizeConfig {
    /// The method's name in errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rdrop(_) => "R-Drop",
            Self::Mixup(_) => "mixup",
            Self::Cutoff(_) => "cutoff",
            Self::Smart(_) => "SMART",
        }
    }

    /// Check the settings; the error names the field (`regularize.alpha`) and the method.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Rdrop(c) => c.validate(),
            Self::Mixup(c) => c.validate(),
            Self::Cutoff(c) => c.validate(),
            Self::Smart(c) => c.validate(),
        }
    }

    /// The objective for `model`, with `ce` (label smoothing) as the loss of each view. The
    /// settings are checked and the model must offer what the method needs.
    pub fn build(&self, ce: CrossEntropy, model: &dyn TextClassifier) -> Result<Box<dyn Objective>> {
        Ok(match self {
            Self::Rdrop(c) => Box::new(RDrop::new(ce, c.clone())?),
            Self::Mixup(c) => Box::new(Mixup::new(ce, c.clone(), model)?),
            Self::Cutoff(c) => Box::new(Cutoff::new(ce, c.clone(), model)?),
            Self::Smart(c) => Box::new(Smart::new(ce, c.clone(), model)?),
        })
    }
}

/// An error for `regularize.<field>` of `method`.
fn invalid(method: &str, field: &str, msg: impl std::fmt::Display) -> TrainError {
    TrainError::Config(format!("regularize.{field} {msg} (method = \"{method}\")"))
}

/// `value` must be finite and ≥ 0 (`> 0` with `strict`).
fn check(method: &str, field: &str, value: f64, strict: bool) -> Result<()> {
    match (value.is_finite(), strict) {
        (true, true) if value > 0.0 => Ok(()),
        (true, false) if value >= 0.0 => Ok(()),
        _ => Err(invalid(method, field, format!("must be a finite number {} 0, got {value}", if strict { ">" } else { "≥" }))),
    }
}

/// The value of a scalar tensor, for the log.
fn value(t: &Tensor) -> Result<f64> {
    Ok(t.f_detach()?.f_to_kind(Kind::Double)?.f_double_value(&[])?)
}
