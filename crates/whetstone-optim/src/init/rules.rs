//! Choosing an initialiser per parameter by name, and applying the choice to a `VarStore`.

use super::Init;
use crate::error::{OptimError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use tch::nn::VarStore;

/// "Parameters whose name matches `pattern` get `init`": one `[[init]]` table of a recipe.
///
/// `pattern` selects names as the optimiser's parameter groups do ([`crate::name_matches`]):
/// without `*` or `?` it matches as a substring (`LayerNorm`, `bias`); otherwise it is a glob
/// over the whole name, `*` matching any run of characters, dots included, and `?` one
/// (`*.bias`, `embeddings.*`, `encoder.layer.*.attention.self.query.weight`). A
/// non-`optional` rule that matches no parameter is an error, so a typo cannot silently leave
/// the model as it was. A rule that matches only names an earlier rule already took is allowed
/// (it simply applies to none).
///
/// ```
/// use whetstone_optim::{Init, InitRule};
/// let rule: InitRule = toml::from_str("pattern = \"*.weight\"\nkind = \"orthogonal\"\ngain = 2.0").unwrap();
/// assert_eq!(rule, InitRule::new("*.weight", Init::Orthogonal { gain: 2.0 }));
/// assert!(rule.matches("lstm.0.fwd.weight"));
/// assert!(!rule.matches("lstm.0.fwd.bias"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitRule {
    /// Substring, or glob with `*` and `?`, over variable names.
    pub pattern: String,
    /// Allow the pattern to match nothing (default false).
    #[serde(default)]
    pub optional: bool,
    /// What to fill the matching parameters with.
    #[serde(flatten)]
    pub init: Init,
}

impl InitRule {
    /// A required rule.
    pub fn new(pattern: &str, init: Init) -> Self {
        Self { pattern: pattern.into(), optional: false, init }
    }

    /// The same rule, allowed to match nothing.
    pub fn optional(self) -> Self {
        Self { optional: true, ..self }
    }

    /// Whether `name` matches the pattern.
    pub fn matches(&self, name: &str) -> bool {
        crate::params::name_matches(&self.pattern, name)
    }
}

/// BERT's initialisation (Devlin et al. 2019) for whetstone's Transformer, whose variables
/// carry BERT's names: LayerNorm weight 1 and bias 0, every other bias 0, and every other
/// weight (embeddings and linears) from N(0, `std`²) with `std` = 0.02 in BERT.
///
/// With `truncated = false` the weights are plain N(0, std²), as Hugging Face's
/// `BertPreTrainedModel._init_weights` does (`normal_(0, initializer_range)`); with `true`
/// they are truncated at ±2·std, as Google's original TensorFlow BERT does
/// (`truncated_normal_initializer(stddev = 0.02)`). whetstone's Transformer is built with
/// the former already. Hugging Face also zeroes the padding row of the word embeddings;
/// whetstone's embeddings have no padding index.
///
/// ```
/// use whetstone_optim::{apply_init, bert_init};
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let _ = tch::nn::linear(vs.root() / "encoder" / "dense", 8, 8, Default::default());
/// let _ = tch::nn::layer_norm(vs.root() / "encoder" / "LayerNorm", vec![8], Default::default());
/// let report = apply_init(&vs, &bert_init(0.02, true), 0)?;
/// assert_eq!(report.assigned.len(), 4);
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
pub fn bert_init(std: f64, truncated: bool) -> Vec<InitRule> {
    let weights = if truncated { Init::TruncatedNormal { mean: 0.0, std, low: None, high: None } } else { Init::Normal { mean: 0.0, std } };
    vec![
        InitRule::new("*LayerNorm.weight", Init::Ones).optional(),
        InitRule::new("*LayerNorm.bias", Init::Zeros).optional(),
        InitRule::new("*.bias", Init::Zeros).optional(),
        InitRule::new("*.weight", weights),
    ]
}

/// One parameter and the rule it got.
#[derive(Debug, Clone, PartialEq)]
pub struct Assigned {
    /// Variable name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<i64>,
    /// Index of the rule in the list given to [`apply_init`].
    pub rule: usize,
    /// The initialiser applied.
    pub init: Init,
}

/// What [`apply_init`] did: every variable, sorted by name, with its rule or untouched.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InitReport {
    /// Variables a rule matched (including `keep` rules).
    pub assigned: Vec<Assigned>,
    /// Variables no rule matched, left as they were.
    pub untouched: Vec<String>,
}

impl InitReport {
    /// The initialiser `name` got, if any rule matched it.
    pub fn init_of(&self, name: &str) -> Option<&Init> {
        self.assigned.iter().find(|a| a.name == name).map(|a| &a.init)
    }
}

impl fmt::Display for InitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for a in &self.assigned {
            writeln!(f, "{:48} {:16} rule {} {:?}", a.name, format!("{:?}", a.shape), a.rule, a.init)?;
        }
        for n in &self.untouched {
            writeln!(f, "{n:48} {:16} untouched", "")?;
        }
        Ok(())
    }
}

/// A per-parameter seed from the run's seed and the name (FNV-1a, then SplitMix64 to mix).
fn param_seed(seed: u64, name: &str) -> i64 {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    let mut z = (seed ^ h).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// Give every variable of `vs` the first rule in `rules` whose glob pattern matches its name;
/// variables no rule matches are left as they are. Each [`Init`] draws exactly as its
/// `torch.nn.init` namesake does (same operations, same order), so after the same seed a
/// tensor gets the same numbers as in PyTorch. In a recipe:
///
/// ```toml
/// [[init]]
/// pattern = "*LayerNorm.*"      # `*` matches any run of characters, dots included
/// kind = "keep"                 # leave as built; first match wins, so this shields them
/// [[init]]
/// pattern = "*.bias"
/// kind = "zeros"
/// [[init]]
/// pattern = "*.weight"
/// kind = "xavier-uniform"
/// gain = 1.0
/// ```
///
/// # What the models start from
///
/// Without rules, whetstone's models keep the initialisation they are built with:
///
/// | model | parameters | initialisation |
/// |---|---|---|
/// | Transformer | word, position and token-type embeddings; every linear (Q, K, V, attention output, FFN, classifier) | N(0, `init_std` = 0.02), biases 0 |
/// | Transformer | LayerNorm | weight 1, bias 0 |
/// | TextCNN | embedding | U(±`init_range` = 0.25) (Kim 2014) |
/// | TextCNN | conv weights, classifier weight | tch's default: Kaiming uniform, fan-in, ReLU gain, i.e. U(±√(6/fan_in)) |
/// | TextCNN | conv biases / classifier bias | 0 / U(±1/√fan_in) |
/// | BiLSTM | embedding | tch's default N(0, 1) |
/// | BiLSTM | LSTM `weight_ih`, `weight_hh`; classifier weight | Kaiming uniform as above |
/// | BiLSTM | LSTM biases / classifier bias | 0 / U(±1/√fan_in) |
///
/// tch's defaults differ from PyTorch's: `nn.Linear` and `nn.Conv1d` in PyTorch use Kaiming
/// uniform with `a = √5`, i.e. U(±1/√fan_in) (`kind = "kaiming-uniform", nonlinearity =
/// "leaky-relu", negative_slope = 2.2360679774997896`), and `nn.LSTM` uses U(±1/√hidden) for
/// every weight and bias. [`bert_init`] reproduces BERT's scheme.
///
/// Each parameter is drawn after `tch::manual_seed` of a seed mixed from `seed` and its name,
/// so the result is the same on every run, device and set of other parameters; this reseeds
/// torch's global generator. Nothing is written unless every non-optional rule matches
/// something and every chosen initialiser fits its parameter's shape (Xavier on a bias is an
/// error, not a silent fan of 1).
///
/// ```
/// use whetstone_optim::{apply_init, Init, InitRule};
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let _ = tch::nn::linear(vs.root() / "classifier", 16, 2, Default::default());
/// let rules = [InitRule::new("*.bias", Init::Zeros), InitRule::new("*", Init::XavierNormal { gain: 1.0 })];
/// let report = apply_init(&vs, &rules, 42)?;
/// assert_eq!(report.init_of("classifier.bias"), Some(&Init::Zeros));
/// assert!(apply_init(&vs, &[InitRule::new("*.wieght", Init::Zeros)], 42).is_err());
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
pub fn apply_init(vs: &VarStore, rules: &[InitRule], seed: u64) -> Result<InitReport> {
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let unmatched: Vec<String> = rules.iter().filter(|r| !r.optional && !vars.iter().any(|(n, _)| r.matches(n))).map(|r| format!("`{}`", r.pattern)).collect();
    if !unmatched.is_empty() {
        let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).take(8).collect();
        return Err(OptimError::Config(format!(
            "init: pattern(s) {} match no parameter (a typo? mark the rule `optional = true` if intended); parameters are named like: {}",
            unmatched.join(", "),
            names.join(", ")
        )));
    }
    let mut report = InitReport::default();
    let mut targets = Vec::new();
    for (name, t) in &vars {
        match rules.iter().position(|r| r.matches(name)) {
            Some(i) => {
                let shape = t.size();
                rules[i].init.check(&shape).map_err(|e| OptimError::Config(format!("{e} (parameter `{name}`, rule `{}`)", rules[i].pattern)))?;
                report.assigned.push(Assigned { name: name.clone(), shape, rule: i, init: rules[i].init.clone() });
                targets.push(t);
            }
            None => report.untouched.push(name.clone()),
        }
    }
    for (a, t) in report.assigned.iter().zip(targets) {
        tch::manual_seed(param_seed(seed, &a.name));
        a.init.fill(t)?;
    }
    Ok(report)
}
