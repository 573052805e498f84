//! Where recipes come from: the set embedded in the binary, or a TOML file.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Recipes compiled into the binary: (name, TOML).
pub const EMBEDDED: &[(&str, &str)] = &[
    ("default", include_str!("../recipes/default.toml")),
    ("rt-transformer", include_str!("../recipes/rt-transformer.toml")),
    ("sms-spam", include_str!("../recipes/sms-spam.toml")),
    ("minilm-rt", include_str!("../recipes/minilm-rt.toml")),
    ("mtl-rt500", include_str!("../recipes/mtl-rt500.toml")),
];

/// Pretraining recipes (masked-LM, domain-adaptive, general distillation) compiled into the binary (`whetstone pretrain`).
pub const EMBEDDED_PRETRAIN: &[(&str, &str)] = &[
    ("mlm-imdb", include_str!("../recipes/mlm-imdb.toml")),
    ("mlm-wiki100", include_str!("../recipes/mlm-wiki100.toml")),
    ("gd-imdb", include_str!("../recipes/gd-imdb.toml")),
    ("dapt-imdb", include_str!("../recipes/dapt-imdb.toml")),
];

/// The TOML of `spec`: an embedded recipe name, or a path to a TOML file. Returns (origin, text).
pub fn load_text(spec: &str) -> Result<(String, String)> {
    load_from(EMBEDDED, spec)
}

/// As [`load_text`], for pretraining recipes.
pub fn load_pretrain_text(spec: &str) -> Result<(String, String)> {
    load_from(EMBEDDED_PRETRAIN, spec)
}

fn load_from(embedded: &[(&str, &str)], spec: &str) -> Result<(String, String)> {
    if let Some((_, text)) = embedded.iter().find(|(n, _)| *n == spec) {
        return Ok((format!("embedded recipe `{spec}`"), text.to_string()));
    }
    let p = Path::new(spec);
    if !p.exists() {
        let names: Vec<&str> = embedded.iter().map(|(n, _)| *n).collect();
        bail!("recipe `{spec}` is neither an embedded recipe ({}) nor an existing file", names.join(", "));
    }
    let text = std::fs::read_to_string(p).with_context(|| format!("reading recipe {}", p.display()))?;
    Ok((p.display().to_string(), text))
}

/// How the user wrote the override `key=value`: the flag that made it, or `--set key=value`.
fn flag_of(o: &str) -> String {
    let (key, value) = o.split_once('=').unwrap_or((o, ""));
    let value = value.trim().trim_matches('"');
    let flag = match key.trim() {
        "device" => "--device",
        "precision" => "--precision",
        "name" => "--name",
        "data.path" => "--data",
        "data.text_col" => "--text-col",
        "data.label_col" => "--label-col",
        "data.valid_path" => "--valid",
        "data.test_path" => "--test",
        _ => return format!("--set {}", o.trim()),
    };
    format!("{flag} {value}")
}

/// `parse(origin, text, overrides)`, with the error blamed on what caused it: the recipe
/// itself, or the first command-line setting (flag or `--set`) that makes it fail.
pub fn parse_blaming<R>(origin: &str, text: &str, overrides: &[String], parse: impl Fn(&str, &str, &[String]) -> std::result::Result<R, String>) -> Result<R> {
    match parse(origin, text, overrides) {
        Ok(r) => Ok(r),
        Err(e) => {
            // The recipe alone: its own fault.
            parse(origin, text, &[]).map_err(anyhow::Error::msg)?;
            for i in 0..overrides.len() {
                if let Err(e) = parse(origin, text, &overrides[..=i]) {
                    let what = e.strip_prefix(&format!("{origin}: ")).unwrap_or(&e).to_string();
                    bail!("{}: {what}", flag_of(&overrides[i]));
                }
            }
            bail!("{e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whetstone_run::{PretrainRecipe, Recipe};

    #[test]
    fn embedded_recipes_are_valid() {
        for (name, text) in EMBEDDED {
            Recipe::parse(name, text, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, text) in EMBEDDED_PRETRAIN {
            PretrainRecipe::parse(name, text, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn missing_recipe_is_a_clear_error() {
        let e = load_text("no-such-recipe").unwrap_err().to_string();
        assert!(e.contains("no-such-recipe") && e.contains("default"), "{e}");
    }
}
