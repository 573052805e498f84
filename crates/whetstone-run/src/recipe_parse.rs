//! Reading recipes: TOML text plus `key.path=value` overrides, validated with errors that name
//! the offending key.

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
        let inner = e.into_inner().to_string();
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

    /// Range checks that serde cannot express, with the key in each message.
    pub fn validate(&self) -> crate::Result<()> {
        use crate::TrainError::Config;
        self.train.validate()?;
        self.schedule.validate()?;
        self.finetune.validate()?;
        let d = &self.data;
        if !(0.0..1.0).contains(&d.valid_fraction) || !(0.0..1.0).contains(&d.test_fraction) || d.valid_fraction + d.test_fraction >= 1.0 {
            return Err(Config(format!("data.valid_fraction ({}) and data.test_fraction ({}) must be in [0, 1) and sum to less than 1", d.valid_fraction, d.test_fraction)));
        }
        if d.max_len < 2 {
            return Err(Config(format!("data.max_len must be >= 2, got {}", d.max_len)));
        }
        check_common(&self.tokenizer, &self.optim, &self.device)?;
        if self.optim.weight_decay < 0.0 {
            return Err(Config(format!("optim.weight_decay must be >= 0, got {}", self.optim.weight_decay)));
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

/// Checks every recipe kind shares: the tokenizer's size, the learning rate and the device.
pub fn check_common(tokenizer: &crate::recipe::TokenizerRecipe, optim: &whetstone_optim::OptimConfig, device: &str) -> crate::Result<()> {
    use crate::TrainError::Config;
    if tokenizer.path.is_none() && tokenizer.vocab_size < 16 {
        return Err(Config(format!("tokenizer.vocab_size must be >= 16, got {}", tokenizer.vocab_size)));
    }
    if !(optim.lr > 0.0 && optim.lr.is_finite()) {
        return Err(Config(format!("optim.lr must be a positive number, got {}", optim.lr)));
    }
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
}
