//! Which parameters a compression method touches, chosen by name pattern.

use crate::error::{CompressError, Result};
use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Tensor};
use whetstone_optim::name_matches;

/// Selects parameters by name ([`whetstone_optim::name_matches`]: substring, or glob with `*`)
/// and rank. The default is what pruning papers prune: the 2-D weights of Linear layers,
/// leaving out embeddings (shared by every position) and the classifier (tiny, and its rows are
/// the classes).
///
/// ```
/// use whetstone_compress::ParamSelector;
/// let s = ParamSelector::default();
/// assert!(s.matches("encoder.layer.0.attention.self.query.weight", 2));
/// assert!(!s.matches("classifier.weight", 2));
/// assert!(!s.matches("encoder.layer.0.output.dense.bias", 1));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParamSelector {
    /// A parameter must match one of these (default `["*.weight"]`).
    pub include: Vec<String>,
    /// … and none of these (default `["embeddings", "classifier", "LayerNorm"]`).
    pub exclude: Vec<String>,
    /// … and have exactly this many dimensions (default 2; 0 accepts any rank).
    pub dims: usize,
}

impl Default for ParamSelector {
    fn default() -> Self {
        Self { include: vec!["*.weight".into()], exclude: vec!["embeddings".into(), "classifier".into(), "LayerNorm".into()], dims: 2 }
    }
}

impl ParamSelector {
    /// Selects names matching any of `include`, with the default exclusions and any rank.
    pub fn patterns<S: AsRef<str>>(include: &[S]) -> Self {
        Self { include: include.iter().map(|s| s.as_ref().to_string()).collect(), dims: 0, ..Default::default() }
    }

    /// Whether a parameter called `name` with `dims` dimensions is selected.
    pub fn matches(&self, name: &str, dims: usize) -> bool {
        (self.dims == 0 || self.dims == dims)
            && self.include.iter().any(|p| name_matches(p, name))
            && !self.exclude.iter().any(|p| name_matches(p, name))
    }

    /// The selected entries of `named`, sorted by name. Selecting nothing is an error that
    /// shows the patterns and some available names.
    pub fn select(&self, named: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
        let mut out: Vec<(String, Tensor)> =
            named.iter().filter(|(n, t)| self.matches(n, t.dim())).map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        if out.is_empty() {
            let mut names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
            names.sort();
            return Err(CompressError::NoMatch {
                patterns: format!("include {:?} exclude {:?} dims {}", self.include, self.exclude, self.dims),
                sample: names.iter().take(6).cloned().collect::<Vec<_>>().join(", "),
            });
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The selected trainable variables of `vs` (sharing storage with the model).
    pub fn select_vs(&self, vs: &VarStore) -> Result<Vec<(String, Tensor)>> {
        let named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        self.select(&named)
    }
}
