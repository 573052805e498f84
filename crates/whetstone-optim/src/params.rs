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

/// Whether parameter `name` matches `pattern`. A pattern without `*` or `?` matches as a
/// substring (`"bias"`, `"LayerNorm"`); otherwise it is a glob over the whole name, where `*`
/// matches any run of characters (dots included) and `?` one character
/// (`"encoder.layer.*.attention.*"`, `"*.bias"`).
///
/// ```
/// use whetstone_optim::name_matches;
/// assert!(name_matches("bias", "encoder.layer.0.output.dense.bias"));
/// assert!(name_matches("*.bias", "classifier.bias"));
/// assert!(!name_matches("classifier.*", "encoder.classifier.weight"));
/// ```
pub fn name_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.contains(pattern);
    }
    fn glob(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
            Some(('?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    glob(&p, &s)
}

/// The trainable variables of `vs`, sorted by name, with `weight_decay` except for names
/// matching any of `no_decay` (see [`name_matches`]).
pub fn named_params(vs: &VarStore, weight_decay: f64, no_decay: &[&str]) -> Vec<Param> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter()
        .map(|(name, tensor)| {
            let wd = if no_decay.iter().any(|p| name_matches(p, &name)) { 0.0 } else { weight_decay };
            Param { name, tensor, weight_decay: wd }
        })
        .collect()
}
