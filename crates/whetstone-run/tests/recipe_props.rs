//! Property tests of the recipe parser and `--set` overrides: arbitrary keys and values (known
//! keys of every embedded recipe and the compression config, random keys, TOML fragments,
//! extremes, garbage) give a recipe or an error naming the problem, never a panic; and a
//! recipe that parses writes back (as `recipe.toml`) to one that parses to the same recipe.

use proptest::prelude::*;
use std::path::PathBuf;
use whetstone_run::compress::CompressConfig;
use whetstone_run::{apply_override, Recipe};

fn recipes_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../whetstone/recipes")
}

/// The embedded training recipes (not the pretraining ones, which are another type).
fn base_recipes() -> Vec<(String, String)> {
    ["default", "rt-transformer", "sms-spam", "minilm-rt"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read_to_string(recipes_dir().join(format!("{n}.toml"))).expect("embedded recipe")))
        .collect()
}

/// Every dotted leaf key of `v`.
fn leaf_keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                out.push(p.clone());
                leaf_keys(v, &p, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

fn recipe_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for (_, text) in base_recipes() {
        let r = Recipe::parse("base", &text, &[]).expect("embedded recipes parse");
        leaf_keys(&toml::Value::try_from(&r).unwrap(), "", &mut keys);
    }
    keys.sort();
    keys.dedup();
    keys
}

fn compress_keys() -> Vec<String> {
    let mut keys = Vec::new();
    leaf_keys(&toml::Value::try_from(CompressConfig::default()).unwrap(), "", &mut keys);
    keys.sort();
    keys.dedup();
    keys
}

/// Keys: known ones (often), known ones with a random suffix or prefix, random dotted paths,
/// and malformed ones (empty segments, spaces, `=`).
fn key(known: Vec<String>) -> impl Strategy<Value = String> {
    let k = known.clone();
    prop_oneof![
        4 => proptest::sample::select(known),
        1 => (proptest::sample::select(k), "[a-z_]{1,8}").prop_map(|(k, s)| format!("{k}.{s}")),
        1 => "[a-z_]{1,10}(\\.[a-z_]{1,10}){0,3}",
        1 => "[ .a-z=_\\[\\]\"]{0,20}",
    ]
}

/// Values: TOML numbers at their extremes, floats that are not finite, strings, booleans,
/// arrays, inline tables, and arbitrary text (taken as a bare string when it is not TOML).
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        prop_oneof![Just(0i64), Just(-1), Just(1), Just(i64::MAX), Just(i64::MIN), Just(u32::MAX as i64 + 1), Just(1 << 40)].prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        prop_oneof![Just("nan"), Just("inf"), Just("-inf"), Just("1e308"), Just("-0.0"), Just("1e-320"), Just("0.5"), Just("2.0")].prop_map(String::from),
        any::<bool>().prop_map(|b| b.to_string()),
        "\"[a-z0-9 ._/-]{0,12}\"",
        prop_oneof![Just("adamw"), Just("sgd"), Just("transformer"), Just("textcnn"), Just("bilstm"), Just("cosine"), Just("linear"), Just("cpu"), Just("cuda"), Just("bf16"), Just("fp16"), Just("mean"), Just("cls"), Just("max")].prop_map(String::from),
        "\\[([0-9]{1,3}, ?){0,3}\\]",
        "\\{ ?[a-z]{1,6} ?= ?[0-9]{1,3} ?\\}",
        ".{0,24}",
    ]
}

fn assignment(known: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (key(known), value()).prop_map(|(k, v)| format!("{k}={v}")),
        1 => ".{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Up to four `--set` overrides on an embedded recipe: a recipe or an error, never a panic;
    /// an error names the recipe's origin; a recipe that parses survives its own `recipe.toml`.
    #[test]
    fn recipe_overrides_parse_or_fail_cleanly(
        base in proptest::sample::select(base_recipes()),
        sets in proptest::collection::vec(assignment(recipe_keys()), 0..4),
    ) {
        match Recipe::parse(&base.0, &base.1, &sets) {
            Ok(recipe) => {
                let written = toml::to_string(&recipe).map_err(|e| TestCaseError::fail(format!("{sets:?}: cannot write recipe.toml: {e}")))?;
                let again = Recipe::parse("recipe.toml", &written, &[]).map_err(|e| TestCaseError::fail(format!("{sets:?}: recipe.toml does not parse back: {e}\n{written}")))?;
                prop_assert_eq!(again, recipe);
            }
            Err(msg) => prop_assert!(msg.starts_with(&base.0) || msg.starts_with("--set"), "{sets:?}: {msg}"),
        }
    }

    /// Arbitrary text as a recipe file: Ok or an error naming the file.
    #[test]
    fn arbitrary_recipe_text_never_panics(text in ".{0,200}") {
        if let Err(msg) = Recipe::parse("r.toml", &text, &[]) {
            prop_assert!(msg.starts_with("r.toml") || msg.starts_with("--set"), "{msg}");
        }
    }

    /// Recipe-shaped text: tables and keys of real recipes with random values.
    #[test]
    fn random_recipe_tables_never_panic(lines in proptest::collection::vec((key(recipe_keys()), value()), 0..8)) {
        let mut text = String::new();
        for (k, v) in &lines {
            match k.rsplit_once('.') {
                Some((table, leaf)) => text.push_str(&format!("[{table}]\n{leaf} = {v}\n")),
                None => text.push_str(&format!("{k} = {v}\n")),
            }
        }
        let _ = Recipe::parse("r.toml", &text, &[]);
    }

    /// The compression config with random overrides: a config or an error, never a panic; a
    /// config that parses survives being written and read back.
    #[test]
    fn compress_overrides_parse_or_fail_cleanly(sets in proptest::collection::vec(assignment(compress_keys()), 0..4)) {
        if let Ok(config) = CompressConfig::parse("c.toml", "", &sets) {
            let written = toml::to_string(&config).map_err(|e| TestCaseError::fail(format!("{sets:?}: {e}")))?;
            let again = CompressConfig::parse("c.toml", &written, &[]).map_err(|e| TestCaseError::fail(format!("{sets:?}: does not parse back: {e}\n{written}")))?;
            prop_assert_eq!(again, config);
        }
    }

    /// `apply_override` alone: Ok or an error; when Ok with a plain dotted key, the value is
    /// found at that key.
    #[test]
    fn apply_override_puts_the_value_at_its_key(k in "[a-z_]{1,6}(\\.[a-z_]{1,6}){0,3}", v in value(), junk in ".{0,30}") {
        let mut table = toml::Value::Table(Default::default());
        let _ = apply_override(&mut table.clone(), &junk);
        let assignment = format!("{k}={v}");
        let set = apply_override(&mut table, &assignment);
        prop_assert!(set.is_ok(), "{assignment}: {set:?}");
        let mut cur = &table;
        for part in k.split('.') {
            cur = cur.get(part).ok_or_else(|| TestCaseError::fail(format!("{k} missing in {table:?}")))?;
        }
        // A second assignment below a leaf that is not a table is an error, not a panic.
        let leaf_is_table = cur.is_table();
        let nested = apply_override(&mut table, &format!("{k}.x=1"));
        prop_assert_eq!(nested.is_ok(), leaf_is_table);
    }
}
