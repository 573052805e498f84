//! The entry functions of the fuzz targets, one per target. `fuzz_targets/*.rs` hand them
//! libFuzzer's bytes; `crates/whetstone-run/tests/fuzz_replay.rs` includes this file and replays
//! `fuzz/corpus/<target>/*` and `fuzz/regressions/<target>/*` (plus random mutations) through
//! the same functions in the ordinary test suite. Each returns normally on any input; a panic
//! (or a failed assertion of a property) is a finding.

use std::path::{Path, PathBuf};
use tch::{nn, nn::VarStore, Device};
use whetstone_data::{read_table, TableSpec};
use whetstone_run::compress::CompressConfig;
use whetstone_run::{apply_override, Recipe};

/// The targets, by the names of their folders under `fuzz/corpus` and `fuzz/regressions`.
pub const TARGETS: [(&str, fn(&[u8])); 3] = [("data_readers", data_readers), ("recipe", recipe), ("checkpoint", checkpoint)];

thread_local! {
    /// One scratch folder per thread, reused by every input (creating one per input would
    /// dominate the run time).
    static SCRATCH: tempfile::TempDir = tempfile::tempdir().expect("a temporary folder");
}

/// `data` written to `name` in the scratch folder.
fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    SCRATCH.with(|d| {
        let path = d.path().join(name);
        std::fs::write(&path, data).expect("writing the scratch file");
        path
    })
}

/// The data readers ([`whetstone_data::read_table`]). The first byte chooses the extension
/// (csv, tsv, jsonl, json) and whether the file has a header line or fixed column names; the
/// rest is the file.
pub fn data_readers(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else { return };
    let ext = ["csv", "tsv", "jsonl", "json"][usize::from(sel & 3)];
    let path = scratch_file(&format!("input.{ext}"), body);
    let columns = (sel & 4 != 0).then(|| vec!["label".to_string(), "text".to_string()]);
    let spec = TableSpec { path, format: None, text_col: "text".into(), label_col: "label".into(), columns, filter: None };
    if let Ok(rows) = read_table(&spec) {
        assert!(!rows.is_empty(), "read_table returned Ok with no rows");
    }
}

/// The recipe parser and `--set`: the input (UTF-8) is recipe TOML, then optionally a line
/// `---` and one `KEY=VALUE` assignment per line. A recipe (or compression config) that parses
/// must write back to TOML that parses to the same value, as `recipe.toml` is read by eval.
pub fn recipe(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (body, sets) = text.split_once("\n---\n").unwrap_or((text, ""));
    let sets: Vec<String> = sets.lines().map(str::to_string).collect();
    if let Ok(r) = Recipe::parse("fuzz.toml", body, &sets) {
        let written = toml::to_string(&r).expect("a parsed recipe writes as TOML");
        let again = Recipe::parse("recipe.toml", &written, &[]).unwrap_or_else(|e| panic!("the written recipe.toml does not parse back: {e}\n{written}"));
        assert_eq!(again, r, "recipe.toml reads back as another recipe");
    }
    if let Ok(c) = CompressConfig::parse("fuzz.toml", body, &sets) {
        let written = toml::to_string(&c).expect("a parsed config writes as TOML");
        let again = CompressConfig::parse("c.toml", &written, &[]).unwrap_or_else(|e| panic!("the written config does not parse back: {e}\n{written}"));
        assert_eq!(again, c, "the config reads back as another config");
    }
    let mut table = toml::Value::Table(Default::default());
    for s in &sets {
        let _ = apply_override(&mut table, s);
    }
}

/// The store the checkpoint target loads into: `layer.weight` [4, 3] and `layer.bias` [4]
/// (float32), the tensors of the seed files.
fn store() -> VarStore {
    let vs = VarStore::new(Device::Cpu);
    let layer = vs.root() / "layer";
    let _ = layer.var("weight", &[4, 3], nn::Init::Const(0.0));
    let _ = layer.var("bias", &[4], nn::Init::Const(0.0));
    vs
}

/// The checkpoint loaders: safetensors bytes parsed in memory
/// ([`whetstone_models::read_safetensors_bytes`]), loaded into a model
/// ([`whetstone_models::load_varstore`]), and read as a resumable checkpoint
/// ([`whetstone_train::Checkpoint::load`], [`whetstone_train::Checkpoint::read_identity`]).
pub fn checkpoint(data: &[u8]) {
    let _ = whetstone_models::read_safetensors_bytes(data, Path::new("fuzz.safetensors"));
    let path = scratch_file("fuzz.safetensors", data);
    let mut vs = store();
    if whetstone_models::load_varstore(&mut vs, &path).is_ok() {
        // What loads is finite.
        let bad = whetstone_models::first_non_finite(vs.variables().iter().map(|(n, t)| (n.as_str(), t))).expect("isfinite");
        assert_eq!(bad, None, "load_varstore accepted non-finite weights");
    }
    let _ = whetstone_train::Checkpoint::load(&path);
    let _ = whetstone_train::Checkpoint::read_identity(&path);
}
