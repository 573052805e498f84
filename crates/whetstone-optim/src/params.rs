//! Named parameters and the weight-decay split.

use tch::{nn::VarStore, Tensor};

/// One trainable tensor and the hyper-parameters that apply to it.
#[derive(Debug)]
pub struct Param {
    /// The variable's name in its `VarStore` (used to name optimiser state).
    pub name: String,
    /// The variable itself (shares storage with the model).
    pub tensor: Tensor,
    /// Decoupled / L2 weight decay for this tensor.
    pub weight_decay: f64,
}

/// Default substrings of parameter names that get no weight decay: biases and LayerNorm
/// (as in BERT's and nanoGPT's recipes, decay only matrices and embeddings).
pub const NO_DECAY: &[&str] = &["bias", "LayerNorm", "layer_norm", "norm.weight"];

/// The trainable variables of `vs`, sorted by name, with `weight_decay` except for names
/// containing any of `no_decay`.
pub fn named_params(vs: &VarStore, weight_decay: f64, no_decay: &[&str]) -> Vec<Param> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter()
        .map(|(name, tensor)| {
            let wd = if no_decay.iter().any(|p| name.contains(p)) { 0.0 } else { weight_decay };
            Param { name, tensor, weight_decay: wd }
        })
        .collect()
}
