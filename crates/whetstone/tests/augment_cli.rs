//! `whetstone augment` and a recipe's `[augment]` section through the real binary, on real
//! rotten-tomatoes sentences and the real WordNet (fetched through the manifest): the JSONL
//! keeps ids and labels and is the same for a seed; bad input is refused before anything is
//! written; an augmenting run killed after 3 steps resumes bit-identically.

mod common;

use common::{bin, ok, fails_with};
use std::path::Path;
use std::process::Command;

fn augment(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args(["augment", "--data"]).arg(data).arg("--out").arg(out).args(extra);
    c
}

fn rows(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn augment_writes_jsonl_that_keeps_ids_and_labels_and_is_the_same_for_a_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::rt_csv(tmp.path(), "rt.csv", 50);
    let source: Vec<(String, String)> = csv::Reader::from_path(&data).unwrap().records().map(|r| r.unwrap()).map(|r| (r[0].to_string(), r[1].to_string())).collect();
    let out = tmp.path().join("eda.jsonl");
    ok(&augment(&data, &out, &["--method", "eda", "--n", "3", "--keep-original", "--seed", "5"]).output().unwrap());
    let got = rows(&out);
    assert_eq!(got.len(), 50 * 4);
    for (k, r) in got.iter().enumerate() {
        let id = r["id"].as_u64().unwrap() as usize;
        assert_eq!(id, k / 4, "grouped by source, in order");
        assert_eq!(r["label"], source[id].1.as_str());
        if k % 4 == 0 {
            assert_eq!(r["text"], source[id].0.as_str(), "the original first");
            assert!(r.get("variant").is_none());
        } else {
            assert_eq!(r["source_text"], source[id].0.as_str());
            assert_eq!(r["variant"], (k % 4 - 1) as u64);
        }
    }
    let changed = got.iter().filter(|r| r.get("variant").is_some() && r["text"] != r["source_text"]).count();
    assert!(changed > 120, "EDA changed only {changed} of 150 sentences");
    // The same seed gives the same file; another seed another one.
    let again = tmp.path().join("again.jsonl");
    ok(&augment(&data, &again, &["--method", "eda", "--n", "3", "--keep-original", "--seed", "5"]).output().unwrap());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    ok(&augment(&data, &again, &["--method", "eda", "--n", "3", "--keep-original", "--seed", "6"]).output().unwrap());
    assert_ne!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    // Masking with [UNK].
    let masked = tmp.path().join("mask.jsonl");
    ok(&augment(&data, &masked, &["--method", "mask", "--alpha", "0.5", "--mask-token", "[UNK]", "--n", "1"]).output().unwrap());
    assert!(rows(&masked).iter().all(|r| r["text"].as_str().unwrap().contains("[UNK]") || r["source_text"].as_str().unwrap().split(' ').count() < 3));
}

#[test]
fn bad_augment_arguments_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::rt_csv(tmp.path(), "rt.csv", 10);
    let out = tmp.path().join("x.jsonl");
    fails_with(&augment(&data, &out, &["--method", "shuffle"]).output().unwrap(), &["unknown augmentation method `shuffle`", "eda, synonym, insert, swap, delete, cutoff, span-cutoff, mask, neighbour, mlm"]);
    fails_with(&augment(&data, &out, &["--method", "eda", "--alpha", "1.5"]).output().unwrap(), &["alpha", "[0, 1]", "1.5"]);
    fails_with(&augment(&data, &tmp.path().join("x.csv"), &["--method", "swap"]).output().unwrap(), &[".jsonl"]);
    fails_with(&augment(&data, &tmp.path().join("no/x.jsonl"), &["--method", "swap"]).output().unwrap(), &["does not exist"]);
    fails_with(&augment(&tmp.path().join("missing.csv"), &out, &["--method", "swap"]).output().unwrap(), &["missing.csv", "rotten-tomatoes"]);
    assert!(!out.exists());
}

/// A tiny Transformer run on `data` with EDA on the fly.
fn train(data: &Path, runs: &Path, name: &str, augment: bool) -> Command {
    let mut c = bin();
    c.args(["train", "--recipe", "rt-transformer", "--data"]).arg(data).arg("--runs-dir").arg(runs).args([
        "--name", name, "--set", "model.layers=1", "--set", "model.hidden=32", "--set", "model.ffn=64", "--set", "tokenizer.vocab_size=400", "--set", "train.epochs=2",
        "--set", "train.checkpoint_every=2", "--set", "train.patience=0", "--set", "eval.latency_iters=2", "--set", "eval.throughput_iters=1", "--set", "threads=1", "--device", "cpu", "--quiet",
    ]);
    if augment {
        c.args(["--set", "augment.method=\"eda\"", "--set", "augment.probability=0.8"]);
    }
    c
}

#[test]
fn an_augmenting_run_killed_after_3_steps_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::rt_csv(tmp.path(), "rt.csv", 240);
    let runs = tmp.path().join("runs");
    ok(&train(&data, &runs, "whole", true).output().unwrap());
    let recipe = std::fs::read_to_string(runs.join("whole/recipe.toml")).unwrap();
    assert!(recipe.contains("[augment]") && recipe.contains("method = \"eda\""), "{recipe}");
    let out = ok(&train(&data, &runs, "cut", true).args(["--stop-after", "3"]).output().unwrap());
    assert!(out.contains("interrupted"), "{out}");
    ok(&bin().args(["train", "--resume"]).arg(runs.join("cut")).args(["--quiet"]).output().unwrap());
    let model = |name: &str| std::fs::read(runs.join(name).join("model.safetensors")).unwrap();
    assert!(model("whole") == model("cut"), "the resumed augmenting run's model differs from the uninterrupted run's");
    // Augmentation changes what is learnt: the same run without it ends elsewhere.
    ok(&train(&data, &runs, "plain", false).output().unwrap());
    assert!(model("whole") != model("plain"));
    // An out-of-range setting is refused with its key before a folder is made.
    fails_with(&train(&data, &runs, "bad", true).args(["--set", "augment.probability=2"]).output().unwrap(), &["augment.probability", "[0, 1]"]);
    assert!(!runs.join("bad").exists());
}

/// `--method mlm` with a tiny `whetstone pretrain` run: masked-LM predictions replace words,
/// deterministically; a model folder that is not a pretraining run is refused.
#[test]
fn mlm_replacement_uses_a_pretrain_run() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("notes.txt");
    let lines: Vec<String> = (0..300).map(|i| format!("note {i}: the harbour lights were {} tonight and the boats stayed in", if i % 2 == 0 { "bright" } else { "dim" })).collect();
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let runs = tmp.path().join("runs");
    let tiny = ["--set", "model.layers=1", "--set", "model.hidden=32", "--set", "model.heads=2", "--set", "model.ffn=64", "--set", "model.max_len=32", "--set", "corpus.max_len=32", "--set", "tokenizer.vocab_size=300", "--set", "train.epochs=1", "--set", "train.eval_every=0", "--device", "cpu", "--quiet"];
    ok(&bin().args(["pretrain", "--corpus"]).arg(&corpus).args(tiny).args(["--name", "notes", "--runs-dir"]).arg(&runs).output().unwrap());
    let data = tmp.path().join("d.csv");
    std::fs::write(&data, "text,label\nthe harbour lights were bright tonight,1\nthe boats stayed in,0\n").unwrap();
    let out = tmp.path().join("mlm.jsonl");
    let args = ["--method", "mlm", "--alpha", "1.0", "--k", "3", "--n", "2"];
    ok(&augment(&data, &out, &args).arg("--model").arg(runs.join("notes")).output().unwrap());
    let got = rows(&out);
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|r| r["text"] != r["source_text"]), "p = 1 replaces every vocabulary word");
    let again = tmp.path().join("again.jsonl");
    ok(&augment(&data, &again, &args).arg("--model").arg(runs.join("notes")).output().unwrap());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    fails_with(&augment(&data, &out, &["--method", "mlm"]).output().unwrap(), &["mlm", "whetstone pretrain", "minilm-l6"]);
}
