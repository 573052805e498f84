//! `whetstone train --data FILE` without `--recipe`: the defaults chosen for the data's size
//! (printed, recorded in metrics.json and report.md, overridden by explicit settings), and the
//! majority-class baseline in every report, with a warning for a model that did not beat it.
//! The small-data encoder is a tiny random BERT (WHETSTONE_SMALL_DATA_ENCODER), not MiniLM.

mod common;
#[path = "../../whetstone-train/tests/common/tiny_bert.rs"]
mod tiny_bert;

use common::{bin, ok};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A CSV of `n` rows: tiny_bert's corpus, with its labels or with `labels(i)`.
fn csv(dir: &Path, name: &str, n: usize, labels: Option<&dyn Fn(usize) -> &'static str>) -> PathBuf {
    let split = tiny_bert::corpus(n);
    let path = dir.join(name);
    let mut w = csv::Writer::from_path(&path).unwrap();
    w.write_record(["text", "label"]).unwrap();
    for (i, (t, l)) in split.texts.iter().zip(&split.labels).enumerate() {
        let label = labels.map_or_else(|| if *l == 1 { "good" } else { "bad" }, |f| f(i));
        w.write_record([t.as_str(), label]).unwrap();
    }
    w.flush().unwrap();
    path
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    encoder: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let encoder = dir.join("tiny-bert");
    std::fs::create_dir_all(&encoder).unwrap();
    tiny_bert::tiny_checkpoint(&encoder);
    Fixture { _tmp: tmp, dir, encoder }
}

impl Fixture {
    /// `whetstone train --data data --name name` on the CPU, the tiny encoder for small data.
    fn train(&self, data: &Path, name: &str, extra: &[&str]) -> Output {
        let mut c = bin();
        c.env("WHETSTONE_SMALL_DATA_ENCODER", &self.encoder).env_remove("WHETSTONE_SMALL_DATA");
        c.args(["train", "--data"]).arg(data).args(["--name", name, "--runs-dir"]).arg(self.dir.join("runs"));
        c.args(["--device", "cpu", "--no-bench"]).args(extra);
        c.output().unwrap()
    }

    fn run(&self, name: &str) -> PathBuf {
        self.dir.join("runs").join(name)
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn metrics(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap()
}

fn choices(m: &serde_json::Value) -> Vec<String> {
    m["size_defaults"]["choices"].as_array().unwrap().iter().map(|c| c["setting"].as_str().unwrap().to_string()).collect()
}

#[test]
fn small_data_gets_defaults_that_are_printed_and_recorded() {
    let f = fixture();
    let data = csv(&f.dir, "reviews.csv", 120, None);
    let o = f.train(&data, "small", &[]);
    let out = ok(&o);
    let err = stderr(&o);
    // One line per choice.
    for needle in [
        "data size: 120 labelled examples, 2 classes — below the small-data threshold of 2000",
        "auto: model = transformer, pretrained",
        "auto: optim.lr = 1e-4",
        "auto: train.batch_size = 16",
        "auto: data.valid_fraction = 0.2",
        "auto: data.test_fraction = 0.2",
        "auto: augment = eda, probability 0.5",
        "auto: train.patience = 0 (off)",
        // 72 training examples, 5 steps per epoch: 50 epochs wanted for 250 steps, capped at 40.
        "auto: train.epochs = 40",
        "auto: note: the data is too small for reliable held-out splits",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    assert!(out.contains("vs majority-class baseline 0.5000"), "{out}");
    let run = f.run("small");
    let recipe = std::fs::read_to_string(run.join("recipe.toml")).unwrap();
    assert!(recipe.contains("kind = \"transformer\"") && recipe.contains("tiny-bert") && recipe.contains("method = \"eda\""), "{recipe}");
    assert!(recipe.contains("epochs = 40") && recipe.contains("lr = 0.0001"), "{recipe}");
    let m = metrics(&run);
    assert_eq!(m["size_defaults"]["small"], true);
    assert_eq!(m["size_defaults"]["examples"], 120);
    assert_eq!(choices(&m), ["model", "optim.lr", "train.clip_norm", "train.batch_size", "data.valid_fraction", "data.test_fraction", "augment", "train.patience", "train.epochs"]);
    assert_eq!(m["train"]["steps"], 200);
    assert_eq!(m["baseline"]["baseline"], 0.5);
    assert_eq!(m["train"]["test_majority_baseline"], 0.5);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for needle in ["## Defaults chosen for the data's size", "| `train.epochs` | 40 |", "vs majority-class baseline 0.5000", "| majority-class baseline (accuracy) |"] {
        assert!(report.contains(needle), "report.md lacks {needle:?}:\n{report}");
    }
}

#[test]
fn explicit_settings_and_recipes_win_over_the_defaults() {
    let f = fixture();
    let data = csv(&f.dir, "reviews.csv", 120, None);
    let tiny = ["--set", "model.embed_dim=16", "--set", "model.channels=8", "--set", "tokenizer.vocab_size=200"];
    let o = f.train(&data, "mine", &[&tiny[..], &["--epochs", "2", "--lr", "0.002", "--set", "augment.method=\"swap\"", "--set", "train.batch_size=8"]].concat());
    ok(&o);
    let err = stderr(&o);
    assert!(err.contains("below the small-data threshold"), "{err}");
    assert!(err.contains("auto: kept your model, optim.lr, train.batch_size, augment, train.epochs (given explicitly)"), "{err}");
    for absent in ["auto: model =", "auto: optim.lr", "auto: train.epochs", "auto: augment", "auto: train.batch_size"] {
        assert!(!err.contains(absent), "an explicit setting was overridden ({absent}):\n{err}");
    }
    let run = f.run("mine");
    let recipe = std::fs::read_to_string(run.join("recipe.toml")).unwrap();
    for needle in ["kind = \"textcnn\"", "epochs = 2", "lr = 0.002", "method = \"swap\"", "batch_size = 8"] {
        assert!(recipe.contains(needle), "recipe.toml lacks {needle:?}:\n{recipe}");
    }
    let m = metrics(&run);
    let kept: Vec<&str> = m["size_defaults"]["kept"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    for k in ["model", "optim.lr", "train.epochs", "augment", "train.batch_size"] {
        assert!(kept.contains(&k), "{k} not recorded as kept: {kept:?}");
    }
    // The small-data splits still apply: nothing explicit about them.
    assert!(choices(&m).contains(&"data.valid_fraction".to_string()));

    // --recipe: the recipe as it is, no size rules.
    let o = f.train(&data, "recipe", &[&["--recipe", "default"], &tiny[..], &["--epochs", "1"]].concat());
    ok(&o);
    let err = stderr(&o);
    assert!(!err.contains("data size:") && !err.contains("auto:"), "{err}");
    let m = metrics(&f.run("recipe"));
    assert!(m["size_defaults"].is_null(), "{}", m["size_defaults"]);
    let recipe = std::fs::read_to_string(f.run("recipe").join("recipe.toml")).unwrap();
    assert!(recipe.contains("kind = \"textcnn\"") && !recipe.contains("[augment]"), "{recipe}");
}

#[test]
fn data_at_the_threshold_keeps_the_default_recipe() {
    let f = fixture();
    let data = csv(&f.dir, "big.csv", whetstone_run::SMALL_DATA_THRESHOLD, None);
    // Stopped after one step: the choices are made and the recipe written before training.
    let o = f.train(&data, "big", &["--stop-after", "1", "--set", "model.embed_dim=16", "--set", "model.channels=8"]);
    ok(&o);
    let err = stderr(&o);
    assert!(err.contains("data size: 2000 labelled examples, 2 classes — at or above the small-data threshold of 2000: the default recipe as it is"), "{err}");
    assert!(!err.contains("auto: "), "{err}");
    let recipe = std::fs::read_to_string(f.run("big").join("recipe.toml")).unwrap();
    assert!(recipe.contains("kind = \"textcnn\"") && !recipe.contains("[augment]") && recipe.contains("epochs = 8"), "{recipe}");
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f.run("big").join("size-defaults.json")).unwrap()).unwrap();
    assert_eq!(plan["small"], false);
    assert_eq!(plan["choices"].as_array().unwrap().len(), 0);
}

#[test]
fn a_run_that_ends_at_the_majority_baseline_says_so() {
    let f = fixture();
    // Labels from a hash of the row number, about 80% `common`: nothing in the texts predicts
    // them, so there is nothing to learn beyond the class frequencies.
    let labels = |i: usize| if ((i.wrapping_mul(2654435761) >> 13) & 1023) % 10 < 8 { "common" } else { "rare" };
    let data = csv(&f.dir, "noise.csv", 200, Some(&labels));
    let o = f.train(&data, "noise", &["--set", "model.embed_dim=16", "--set", "model.channels=8", "--epochs", "1"]);
    let out = ok(&o);
    let err = stderr(&o);
    assert!(out.contains("vs majority-class baseline 0.") && out.contains("(always `common`)"), "{out}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("warning: the model did not beat the majority-class baseline"), "the warning is not the last line:\n{err}");
    for needle in ["more labelled data", "pretrained encoder", "check that the labels", "macro-F1"] {
        assert!(last.contains(needle), "the warning lacks {needle:?}: {last}");
    }
    let run = f.run("noise");
    let m = metrics(&run);
    assert_eq!(m["baseline"]["near_baseline"], true);
    assert_eq!(m["baseline"]["class"], "common");
    assert!(m["baseline"]["warning"].as_str().unwrap().contains("did not beat"));
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("> **Warning:** the model did not beat the majority-class baseline"), "{report}");

    // `whetstone eval` shows the baseline too.
    let o = bin().args(["eval", "--run"]).arg(&run).args(["--device", "cpu"]).output().unwrap();
    let out = ok(&o);
    assert!(out.contains("vs majority-class baseline 0.") && out.contains("(always `common`)"), "{out}");
    assert!(stderr(&o).contains("warning: the model did not beat"), "{}", stderr(&o));
}
