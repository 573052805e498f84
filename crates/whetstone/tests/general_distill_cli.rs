//! `whetstone distill --general` and `whetstone pretrain --init` end to end on a small corpus:
//! a tiny masked-LM run is the teacher and the checkpoint to continue; each result is an
//! encoder folder; bad settings exit 1 with a message naming them and leave no folder.

mod common;

use common::{bin, ok, fails_with};
use std::path::{Path, PathBuf};

fn corpus(dir: &Path) -> PathBuf {
    let subjects = ["the cat", "a dog", "my neighbour", "the old sailor", "every child", "the quiet teacher"];
    let verbs = ["chases", "feeds", "paints", "remembers", "admires", "follows"];
    let objects = ["the red ball", "a small bird", "the harbour lights", "an empty room", "the winter sky", "a paper boat"];
    let lines: Vec<String> = (0..240).map(|i| format!("{} {} {} and then {} {} {}.", subjects[i % 6], verbs[i % 6], objects[i % 6], subjects[(i / 6) % 6], verbs[(i / 6) % 6], objects[(i / 6) % 6])).collect();
    let path = dir.join("stories.txt");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

/// Small windows and one short epoch for every run here.
const FAST: [&str; 8] = ["--set", "corpus.max_len=32", "--set", "corpus.min_tokens=4", "--set", "corpus.valid_fraction=0.1", "--set", "train.eval_every=0"];

#[test]
fn general_distillation_and_dapt_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let text = corpus(tmp.path());
    let runs = tmp.path().join("runs");
    // The teacher: masked-LM pretraining of a 2 × 32 encoder on the corpus.
    let mut c = bin();
    c.args(["pretrain", "--corpus"]).arg(&text).args(["--name", "teacher", "--runs-dir"]).arg(&runs);
    c.args(["--device", "cpu", "--threads", "1", "--quiet"]).args(FAST);
    c.args(["--set", "tokenizer.vocab_size=200", "--set", "model.layers=2", "--set", "model.hidden=32", "--set", "model.heads=4", "--set", "model.ffn=64", "--set", "model.max_len=32", "--set", "train.epochs=2"]);
    ok(&c.output().unwrap());
    let teacher = runs.join("teacher");

    let distill = |extra: &[&str]| {
        let mut c = bin();
        c.args(["distill", "--general", "--teacher", "teacher", "--corpus"]).arg(&text).args(["--runs-dir"]).arg(&runs);
        c.args(["--device", "cpu", "--threads", "1", "--epochs", "1", "--quiet"]).args(FAST).args(["--set", "model.max_len=32"]);
        c.args(extra);
        c.output().unwrap()
    };
    // Named after the student's shape; the teacher is found under --runs-dir.
    let out = ok(&distill(&["--student", "1x16x2x32", "--layers-map", "last"]));
    assert!(out.contains("valid distillation loss") && out.contains("encoder:"), "{out}");
    let gd = runs.join("gd-1x16");
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(gd.join("encoder/config.json")).unwrap()).unwrap();
    assert_eq!((config["num_hidden_layers"].as_u64(), config["hidden_size"].as_u64(), config["num_attention_heads"].as_u64()), (Some(1), Some(16), Some(2)));
    let recipe = std::fs::read_to_string(gd.join("pretrain.toml")).unwrap();
    assert!(recipe.contains("[general]") && recipe.contains("mapping = \"last\""), "{recipe}");

    // Killed part-way, it resumes with `whetstone pretrain --resume`.
    let out = ok(&distill(&["--student", "1x16", "--name", "cut", "--stop-after", "2", "--set", "train.checkpoint_every=1"]));
    assert!(out.contains("interrupted at step 2"), "{out}");
    let mut c = bin();
    c.args(["pretrain", "--resume", "cut", "--runs-dir"]).arg(&runs).args(["--quiet"]);
    ok(&c.output().unwrap());
    assert!(runs.join("cut/encoder/model.safetensors").is_file());

    // Mistakes are named, and no run folder is left behind.
    fails_with(distill(&["--student", "1x16", "--layers-map", "0:9", "--name", "bad1"]), &["0:9", "out of range"]);
    fails_with(distill(&["--student", "3x16", "--name", "bad2"]), &["at least as deep"]);
    fails_with(distill(&["--student", "one-by-16", "--name", "bad3"]), &["--student", "4x128"]);
    fails_with(distill(&["--student", "1x16", "--set", "general.attention_loss=\"cosine\"", "--name", "bad4"]), &["attention_loss"]);
    let mut c = bin();
    c.args(["distill", "--general", "--teacher", "no-such-encoder", "--corpus"]).arg(&text).args(["--runs-dir"]).arg(&runs).args(["--quiet"]);
    fails_with(c.output().unwrap(), &["no-such-encoder", "minilm-l6"]);
    for bad in ["bad1", "bad2", "bad3", "bad4"] {
        assert!(!runs.join(bad).exists(), "{bad} left a folder");
    }

    // Domain-adaptive pretraining continues the teacher's encoder with its tokenizer.
    let mut c = bin();
    c.args(["pretrain", "--init"]).arg(&teacher).args(["--corpus"]).arg(&text).args(["--runs-dir"]).arg(&runs);
    c.args(["--device", "cpu", "--threads", "1", "--quiet"]).args(FAST).args(["--set", "train.epochs=1"]);
    let out = ok(&c.output().unwrap());
    assert!(out.contains("valid MLM loss"), "{out}");
    let dapt = runs.join("stories-dapt");
    assert_eq!(std::fs::read(dapt.join("encoder/tokenizer.json")).unwrap(), std::fs::read(teacher.join("encoder/tokenizer.json")).unwrap());
    assert_eq!(std::fs::read_to_string(dapt.join("encoder/config.json")).unwrap(), std::fs::read_to_string(teacher.join("encoder/config.json")).unwrap());
    assert_ne!(std::fs::read(dapt.join("encoder/model.safetensors")).unwrap(), std::fs::read(teacher.join("encoder/model.safetensors")).unwrap());
}
