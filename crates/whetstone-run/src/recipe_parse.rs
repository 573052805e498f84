//! Reading recipes: TOML text plus `key.path=value` overrides, validated with errors that name
//! the offending key.

use crate::folder::run_name;
use crate::recipe::Recipe;
use toml::Value;

/// Apply `key.path=value` to `table`. The value is parsed as TOML (number, bool, array, quoted
/// string); anything that does not parse is taken as a bare string.
///
/// ```
/// let mut v = toml::Value::Table(Default::default());
/// whetstone_run::apply_override(&mut v, "optim.lr=3e-4").unwrap();
/// assert_eq!(v["optim"]["lr"].as_float(), Some(3e-4));
/// ```
pub fn apply_override(table: &mut Value, assignment: &str) -> Result<(), String> {
    let (key, raw) = assignment.split_once('=').ok_or_else(|| format!("--set `{assignment}`: expected KEY=VALUE, e.g. optim.lr=3e-4"))?;
    let key = key.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {}", raw.trim())) {
        Ok(mut t) => t.remove("v").unwrap_or(Value::String(raw.to_string())),
        Err(_) => Value::String(raw.trim().to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err(format!("--set `{assignment}`: malformed key `{key}`"));
    }
    let mut cur = table;
    for part in &parts[..parts.len() - 1] {
        let t = cur.as_table_mut().ok_or_else(|| format!("--set {key}: `{part}` is not a table"))?;
        cur = t.entry(part.to_string()).or_insert_with(|| Value::Table(Default::default()));
    }
    let t = cur.as_table_mut().ok_or_else(|| format!("--set {key}: `{}` is not a table", parts[parts.len() - 2]))?;
    t.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// Keys present in `given` but absent from `known` (the recipe as understood), as dotted paths.
fn unknown_keys(given: &Value, known: &Value, prefix: &str, out: &mut Vec<String>) {
    if let (Value::Table(g), Value::Table(k)) = (given, known) {
        for (key, gv) in g {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match k.get(key) {
                None => out.push(path),
                Some(kv) => unknown_keys(gv, kv, &path, out),
            }
        }
    }
}

/// The reduce-on-plateau settings of `s`, also when it follows a warmup.
fn plateau_of(s: &whetstone_optim::Schedule) -> Option<&whetstone_optim::PlateauConfig> {
    match s {
        whetstone_optim::Schedule::ReduceOnPlateau(p) => Some(p),
        whetstone_optim::Schedule::Warmup { then, .. } => plateau_of(then),
        _ => None,
    }
}

/// Parse TOML `text` (from `origin`, used in messages) into `T` with `overrides` applied.
/// Unknown keys anywhere are rejected by their full dotted name (also inside flattened
/// tables, by comparing with `T` serialised back); bad values name their key.
pub fn parse_toml<T: serde::de::DeserializeOwned + serde::Serialize>(origin: &str, text: &str, overrides: &[String]) -> Result<T, String> {
    let mut value = toml::from_str::<toml::Table>(text).map(Value::Table).map_err(|e| format!("{origin}: {e}"))?;
    for o in overrides {
        apply_override(&mut value, o)?;
    }
    let parsed: T = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        // One line: serde's messages may carry a second line naming the table again.
        let inner = e.into_inner().to_string().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
        let prefix = if path == "." { String::new() } else { format!("{path}.") };
        if let Some(field) = inner.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
            let key = if path == field || path.ends_with(&format!(".{field}")) { path.clone() } else { format!("{prefix}{field}") };
            return format!("{origin}: unknown key `{key}` ({})", inner.lines().next().unwrap_or_default());
        }
        if path == "." {
            format!("{origin}: {inner}")
        } else {
            format!("{origin}: key `{path}`: {inner}")
        }
    })?;
    let known = Value::try_from(&parsed).map_err(|e| format!("{origin}: {e}"))?;
    let mut unknown = Vec::new();
    unknown_keys(&value, &known, "", &mut unknown);
    if !unknown.is_empty() {
        return Err(format!("{origin}: unknown key(s) {}", unknown.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")));
    }
    Ok(parsed)
}

impl Recipe {
    /// Parse recipe TOML `text` (from `origin`, used in messages) with `overrides` applied.
    /// Unknown keys anywhere are rejected by their full dotted name; bad values name their key.
    pub fn parse(origin: &str, text: &str, overrides: &[String]) -> Result<Recipe, String> {
        let recipe: Recipe = parse_toml(origin, text, overrides)?;
        recipe.validate().map_err(|e| format!("{origin}: {e}"))?;
        Ok(recipe)
    }

    /// Every check a recipe gets before anything is written, with the key in each message:
    /// finite floats everywhere, ranges, integers that fit the types they become, the
    /// optimiser's and the model's own settings, and a model small enough to allocate (with
    /// the WordPiece vocabulary it will train; a loaded tokenizer or pretrained checkpoint is
    /// measured again once read).
    pub fn validate(&self) -> whetstone_train::Result<()> {
        use whetstone_train::TrainError::Config;
        check_finite(self)?;
        run_name(&self.name).map_err(|e| Config(format!("name: {e}")))?;
        check_threads(self.threads)?;
        self.train.validate()?;
        self.schedule.validate()?;
        self.finetune.validate()?;
        if let Some(r) = &self.regularize {
            r.validate()?;
        }
        if let Some(a) = &self.adversarial {
            a.validate()?;
            if let Some(whetstone_train::consistency::RegularizeConfig::Mixup(m)) = &self.regularize {
                if m.on == whetstone_train::consistency::MixupOn::Hidden {
                    return Err(Config(format!(
                        "regularize.on = \"hidden\" cannot be combined with [adversarial] ({}): the adversarial pass perturbs the embeddings, so mixup must mix them (on = \"embeddings\")",
                        a.name()
                    )));
                }
            }
        }
        if let Some(a) = &self.augment {
            a.validate()?;
        }
        crate::multitask::validate(self)?;
        let d = &self.data;
        if !(0.0..1.0).contains(&d.valid_fraction) || !(0.0..1.0).contains(&d.test_fraction) || d.valid_fraction + d.test_fraction >= 1.0 {
            return Err(Config(format!("data.valid_fraction ({}) and data.test_fraction ({}) must be in [0, 1) and sum to less than 1", d.valid_fraction, d.test_fraction)));
        }
        if d.max_len < 2 || d.max_len > MAX_TOKENS {
            return Err(Config(format!("data.max_len must be in [2, {MAX_TOKENS}], got {}", d.max_len)));
        }
        check_common(&self.tokenizer, &self.optim, &self.device)?;
        self.model.validate()?;
        for (key, v) in [("eval.latency_iters", self.eval.latency_iters), ("eval.throughput_iters", self.eval.throughput_iters)] {
            if v > MAX_ITERS {
                return Err(Config(format!("{key} = {v} is too large (at most {MAX_ITERS})")));
            }
        }
        if self.tokenizer.path.is_none() {
            check_model_size(&self.model, self.tokenizer.vocab_size, 2, "tokenizer.vocab_size")?;
        }
        if let Some(p) = plateau_of(&self.schedule) {
            if p.mode != whetstone_optim::PlateauMode::Max {
                return Err(Config(format!(
                    "schedule: reduce-on-plateau watches train.metric (`{}`), where higher is better: set schedule mode = \"max\"",
                    self.train.metric
                )));
            }
        }
        Ok(())
    }
}

/// The most intra-op threads a recipe may ask for.
pub(crate) const MAX_THREADS: usize = 4096;
/// The longest input (tokens) a recipe may ask for.
pub(crate) const MAX_TOKENS: usize = 1 << 20;
/// The largest WordPiece vocabulary.
pub(crate) const MAX_VOCAB: usize = 1 << 24;
/// The most timed iterations of latency or throughput.
pub(crate) const MAX_ITERS: usize = 1_000_000;
/// The most parameter memory (at 4 bytes a parameter) a model may need.
pub const MAX_MODEL_BYTES: u128 = 16 << 30;

/// `threads` fits libtorch's `i32` and a sane machine.
pub(crate) fn check_threads(threads: usize) -> whetstone_train::Result<()> {
    if threads > MAX_THREADS {
        return Err(whetstone_train::TrainError::Config(format!("threads = {threads} is too large (at most {MAX_THREADS}; 0 keeps libtorch's default)")));
    }
    Ok(())
}

/// Every float in `value` (serialised as TOML) is finite; the error names the first key that
/// is not (NaN never equals itself, and an infinite rate or weight only fails later).
pub(crate) fn check_finite(value: &impl serde::Serialize) -> whetstone_train::Result<()> {
    fn walk(v: &Value, key: &str) -> Option<(String, f64)> {
        match v {
            Value::Float(f) if !f.is_finite() => Some((key.to_string(), *f)),
            Value::Table(t) => t.iter().find_map(|(k, sub)| walk(sub, &if key.is_empty() { k.clone() } else { format!("{key}.{k}") })),
            Value::Array(a) => a.iter().enumerate().find_map(|(i, sub)| walk(sub, &format!("{key}[{i}]"))),
            _ => None,
        }
    }
    let v = Value::try_from(value).map_err(|e| whetstone_train::TrainError::Config(e.to_string()))?;
    match walk(&v, "") {
        Some((key, f)) => Err(whetstone_train::TrainError::Config(format!("{key} must be a finite number, got {f}"))),
        None => Ok(()),
    }
}

/// A model of this shape, with `vocab` ids (`vocab_key` says where that number comes from),
/// fits in [`MAX_MODEL_BYTES`] of parameters; the error names the model's size keys.
pub(crate) fn check_model_size(model: &whetstone_models::ModelConfig, vocab: usize, labels: usize, vocab_key: &str) -> whetstone_train::Result<()> {
    let Some(params) = model.estimated_parameters(vocab, labels) else {
        return Ok(());
    };
    check_size(params, &model_size_keys(model), vocab, vocab_key)
}

/// The keys that set a model's size, with their values.
pub(crate) fn model_size_keys(model: &whetstone_models::ModelConfig) -> String {
    use whetstone_models::ModelConfig;
    let keys: Vec<(&str, String)> = match model {
        ModelConfig::Transformer(c) => {
            let e = &c.encoder;
            vec![("layers", e.layers.to_string()), ("hidden", e.hidden.to_string()), ("ffn", e.ffn.to_string()), ("max_len", e.max_len.to_string())]
        }
        ModelConfig::Textcnn(c) => vec![("embed_dim", c.embed_dim.to_string()), ("channels", c.channels.to_string()), ("kernel_sizes", format!("{:?}", c.kernel_sizes))],
        ModelConfig::Bilstm(c) => vec![("embed_dim", c.embed_dim.to_string()), ("hidden", c.hidden.to_string()), ("layers", c.layers.to_string())],
    };
    keys.iter().map(|(k, v)| format!("model.{k} = {v}")).collect::<Vec<_>>().join(", ")
}

/// `params` parameters fit in [`MAX_MODEL_BYTES`] (`vocab_key` names where the vocabulary
/// size came from; empty when it is not counted yet).
pub(crate) fn check_size(params: u128, keys: &str, vocab: usize, vocab_key: &str) -> whetstone_train::Result<()> {
    let bytes = params.saturating_mul(4);
    if bytes > MAX_MODEL_BYTES {
        let vocab = if vocab_key.is_empty() { String::new() } else { format!(", {vocab_key} = {vocab}") };
        return Err(whetstone_train::TrainError::Config(format!(
            "the model is too large to allocate: about {:.3e} parameters ({:.1} GiB at 4 bytes each) from {keys}{vocab}; at most {} GiB of parameters is allowed",
            params as f64,
            bytes as f64 / (1u64 << 30) as f64,
            MAX_MODEL_BYTES >> 30
        )));
    }
    Ok(())
}

/// Checks every recipe kind shares: the tokenizer's size, the optimiser and the device.
pub fn check_common(tokenizer: &crate::recipe::TokenizerRecipe, optim: &whetstone_optim::OptimConfig, device: &str) -> whetstone_train::Result<()> {
    use whetstone_train::TrainError::Config;
    if tokenizer.path.is_none() && !(16..=MAX_VOCAB).contains(&tokenizer.vocab_size) {
        return Err(Config(format!("tokenizer.vocab_size must be in [16, {MAX_VOCAB}], got {}", tokenizer.vocab_size)));
    }
    optim.validate().map_err(|e| match e {
        whetstone_optim::OptimError::Config(m) => Config(m),
        other => Config(format!("optim: {other}")),
    })?;
    whetstone_models::parse_device(device).map_err(|e| Config(format!("device: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "name = \"t\"\n[model]\nkind = \"transformer\"\nlayers = 1\n[optim]\nkind = \"adamw\"\nlr = 1e-3\n";

    #[test]
    fn overrides_set_nested_values_with_types() {
        let r = Recipe::parse("t", BASE, &["optim.lr=3e-4".into(), "train.epochs=2".into(), "name=abc".into(), "data.path=x.csv".into(), "model.pooling=cls".into()]).unwrap();
        assert_eq!(r.optim.lr, 3e-4);
        assert_eq!(r.train.epochs, 2);
        assert_eq!(r.name, "abc");
        assert_eq!(r.data.path.as_deref(), Some(std::path::Path::new("x.csv")));
        assert!(matches!(r.model, whetstone_models::ModelConfig::Transformer(ref c) if c.pooling == whetstone_models::Pooling::Cls && c.encoder.layers == 1));
    }

    #[test]
    fn unknown_keys_are_named_even_inside_flattened_tables() {
        for (set, key) in [("train.epoch=3", "train.epoch"), ("model.layer=3", "model.layer"), ("optim.betas1=0.9", "optim.betas1"), ("finetune.freez=[]", "finetune.freez"), ("extra=1", "extra")] {
            let e = Recipe::parse("r.toml", BASE, &[set.into()]).unwrap_err();
            assert!(e.contains(&format!("`{key}`")) && e.contains("r.toml"), "{set}: {e}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Recipe::parse("t", BASE, &["train.epochs=\"ten\"".into()]).unwrap_err();
        assert!(e.contains("train.epochs"), "{e}");
        let e = Recipe::parse("t", BASE, &["optim.lr=-1".into()]).unwrap_err();
        assert!(e.contains("optim.lr"), "{e}");
        let e = Recipe::parse("t", BASE, &["data.test_fraction=0.95".into()]).unwrap_err();
        assert!(e.contains("data.test_fraction"), "{e}");
        let e = Recipe::parse("t", BASE, &["optim.kind=\"adamz\"".into()]).unwrap_err();
        assert!(e.contains("optim") && e.contains("adamz"), "{e}");
        let e = Recipe::parse("t", BASE, &["optimlr".into()]).unwrap_err();
        assert!(e.contains("KEY=VALUE"), "{e}");
        let e = Recipe::parse("file.toml", "name = [", &[]).unwrap_err();
        assert!(e.contains("file.toml"), "{e}");
        let e = Recipe::parse("t", BASE, &["schedule.kind=\"reduce-on-plateau\"".into()]).unwrap_err();
        assert!(e.contains("mode = \"max\""), "{e}");
        Recipe::parse("t", BASE, &["schedule.kind=\"reduce-on-plateau\"".into(), "schedule.mode=\"max\"".into()]).unwrap();
        let e = Recipe::parse("t", BASE, &["device=tpu".into()]).unwrap_err();
        assert!(e.contains("device"), "{e}");
    }

    #[test]
    fn every_value_is_checked_at_parse_time_with_its_key() {
        for (set, key) in [
            ("optim.weight_decay=nan", "optim.weight_decay"),
            ("optim.lr=inf", "optim.lr"),
            ("optim.betas=[0.9, nan]", "optim.betas[1]"),
            ("schedule={ kind = \"warmup-linear\", warmup_ratio = nan }", "schedule.warmup_ratio"),
            ("train.label_smoothing=nan", "train.label_smoothing"),
            ("train.clip_norm=-inf", "train.clip_norm"),
            ("model.dropout=nan", "model.dropout"),
            ("data.valid_fraction=nan", "data.valid_fraction"),
            ("threads=4294967296", "threads"),
            ("train.batch_size=4611686018427387904", "train.batch_size"),
            ("train.bucket_factor=4611686018427387904", "train.bucket_factor"),
            ("data.max_len=99999999999", "data.max_len"),
            ("tokenizer.vocab_size=4294967296", "tokenizer.vocab_size"),
            ("eval.latency_iters=99999999999", "eval.latency_iters"),
            ("model.hidden=3", "model.hidden"),
            ("model.heads=0", "model.heads"),
            ("model.layer_norm_eps=0", "model.layer_norm_eps"),
            ("name=\"../x\"", "name"),
            ("name=\"/abs\"", "name"),
        ] {
            let e = Recipe::parse("r.toml", BASE, &[set.into()]).unwrap_err();
            assert!(e.contains(key) && e.contains("r.toml") && !e.contains('\n'), "{set}: {e}");
        }
        // A model too large to allocate is refused before anything is built, naming its keys.
        let e = Recipe::parse("r.toml", BASE, &["model.hidden=131072".into(), "model.heads=1".into()]).unwrap_err();
        assert!(e.contains("too large") && e.contains("model.hidden = 131072") && e.contains("tokenizer.vocab_size"), "{e}");
        let e = Recipe::parse("r.toml", "[model]\nkind = \"textcnn\"\nembed_dim = 1000000\n", &[]).unwrap_err();
        assert!(e.contains("too large") && e.contains("model.embed_dim"), "{e}");
        // NaN is refused, so it can never make a recipe differ from itself.
        let ok = Recipe::parse("r.toml", BASE, &[]).unwrap();
        assert_eq!(Recipe::parse("again", &toml::to_string(&ok).unwrap(), &[]).unwrap(), ok);
    }
}
