//! Augmenters by name: the one place that maps a method name and its settings (from a CLI flag
//! or a recipe's `[augment]` section) to an [`Augmenter`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::augmenter::Augmenter;
use crate::cutoff::{SpanCutoff, TokenCutoff};
use crate::eda::{Eda, EdaConfig, RandomDeletion, RandomInsertion, RandomSwap, SynonymReplacement};
use crate::error::{AugmentError, Result};
use crate::mask::{RandomMask, DEFAULT_MASK_TOKEN};
use crate::neighbours::{NeighbourReplace, Neighbours};
use crate::stopwords::StopWords;
use crate::wordnet::WordNet;

/// The method names [`AugmentSpec::method`] accepts.
pub const METHODS: [&str; 10] = ["eda", "synonym", "insert", "swap", "delete", "cutoff", "span-cutoff", "mask", "neighbour", "mlm"];

/// A method and its settings.
///
/// `alpha` is the method's one strength, with a per-method default: EDA's α for all four
/// operations (`eda`, 0.1; see [`EdaConfig`]), the α of one operation (`synonym`, `insert`,
/// `swap`: 0.1), a per-word probability (`delete` 0.1, `mask` 0.15, `neighbour` and `mlm` 0.4 as
/// in TinyBERT) or the share of words cut (`cutoff`, `span-cutoff`: 0.1). `mlm` needs a model
/// with a masked-LM head and the `torch` feature: build it as `MlmReplace`, not here.
///
/// ```
/// use whetstone_augment::AugmentSpec;
/// let spec = AugmentSpec::new("mask").with_alpha(1.0);
/// let aug = spec.build(None, None)?;
/// assert_eq!(aug.augment("so dull", &mut whetstone_augment::example_rng(0, 0, 0))?, "[MASK] [MASK]");
/// assert!(AugmentSpec::new("shuffle").validate().unwrap_err().to_string().contains("eda, synonym"));
/// # Ok::<(), whetstone_augment::AugmentError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentSpec {
    /// One of [`METHODS`].
    pub method: String,
    /// The method's strength (see above); `None` takes the method's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Neighbours per word for `neighbour` (default 15, TinyBERT's K).
    #[serde(default = "default_k")]
    pub k: usize,
    /// The token `mask` puts in place of a word (default `[MASK]`; `[UNK]` is the other usual one).
    #[serde(default = "default_mask_token")]
    pub mask_token: String,
}

fn default_k() -> usize {
    NeighbourReplace::DEFAULT_K
}

fn default_mask_token() -> String {
    DEFAULT_MASK_TOKEN.to_string()
}

impl AugmentSpec {
    /// `method` with its default settings.
    pub fn new(method: impl Into<String>) -> Self {
        AugmentSpec { method: method.into(), alpha: None, k: default_k(), mask_token: default_mask_token() }
    }

    /// The same with strength `alpha`.
    pub fn with_alpha(mut self, alpha: f64) -> Self {
        self.alpha = Some(alpha);
        self
    }

    /// The strength in force: `alpha`, else the method's default.
    pub fn strength(&self) -> f64 {
        self.alpha.unwrap_or(match self.method.as_str() {
            "mask" => 0.15,
            "neighbour" | "mlm" => NeighbourReplace::DEFAULT_P,
            _ => 0.1,
        })
    }

    /// Whether the method draws synonyms from WordNet.
    pub fn needs_wordnet(&self) -> bool {
        matches!(self.method.as_str(), "eda" | "synonym" | "insert")
    }

    /// Whether the method needs a model's embeddings ([`Neighbours`]).
    pub fn needs_embeddings(&self) -> bool {
        self.method == "neighbour"
    }

    /// A known method, a strength in [0, 1], `k` ≥ 1: checked without loading anything.
    pub fn validate(&self) -> Result<()> {
        if !METHODS.contains(&self.method.as_str()) {
            return Err(AugmentError::UnknownMethod { name: self.method.clone(), known: METHODS.iter().map(|s| s.to_string()).collect() });
        }
        crate::eda::check_unit("alpha", self.strength())?;
        if self.k == 0 {
            return Err(AugmentError::config("k", "must be at least 1"));
        }
        Ok(())
    }

    /// The augmenter. `wordnet` is required by the methods for which
    /// [`needs_wordnet`](Self::needs_wordnet) holds, `neighbours` by `neighbour`.
    pub fn build(&self, wordnet: Option<Arc<WordNet>>, neighbours: Option<Arc<Neighbours>>) -> Result<Box<dyn Augmenter>> {
        self.validate()?;
        let a = self.strength();
        let wn = || wordnet.clone().ok_or_else(|| AugmentError::InvalidArgument(format!("method `{}` needs WordNet (`whetstone data wordnet`)", self.method)));
        let stop = StopWords::english;
        Ok(match self.method.as_str() {
            "eda" => Box::new(Eda::new(EdaConfig::uniform(a, EdaConfig::default().n_aug), wn()?, stop())?),
            "synonym" => Box::new(SynonymReplacement::new(a, wn()?, stop())?),
            "insert" => Box::new(RandomInsertion::new(a, wn()?, stop())?),
            "swap" => Box::new(RandomSwap::new(a)?),
            "delete" => Box::new(RandomDeletion::new(a)?),
            "cutoff" => Box::new(TokenCutoff::new(a)?),
            "span-cutoff" => Box::new(SpanCutoff::new(a)?),
            "mask" => Box::new(RandomMask::new(a, self.mask_token.clone())?),
            "neighbour" => {
                let n = neighbours.ok_or_else(|| AugmentError::InvalidArgument("method `neighbour` needs a model's embeddings (Neighbours)".into()))?;
                Box::new(NeighbourReplace::new(n, a)?)
            }
            "mlm" => return Err(AugmentError::InvalidArgument("method `mlm` needs a masked-LM model: build `MlmReplace` (the `torch` feature) from a `whetstone pretrain` run".into())),
            other => unreachable!("validate() accepted `{other}`"),
        })
    }
}
