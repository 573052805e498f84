//! `whetstone distill` and `whetstone prune` end to end on a tiny Transformer: each writes a run
//! folder that `eval` and `predict` load (a structurally pruned one as a smaller dense model,
//! an int8 one served in int8), and bad inputs give clear errors with exit status 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tch::{Kind, Tensor};
use whetstone_data::{load_splits, DataSource};

mod common;
use common::{bin, ok, fails_with};

/// 900 rotten-tomatoes sentences as a CSV.
fn csv(dir: &Path) -> PathBuf {
    let s = load_splits(&DataSource::Named { name: "rotten-tomatoes".into() }, 0.1, 0.1, 3).expect("rotten-tomatoes (cargo xtask data)");
    let path = dir.join("rt.csv");
    let mut body = String::from("text,label\n");
    for (t, l) in s.train.texts.iter().zip(&s.train.labels).take(900) {
        body.push_str(&format!("\"{}\",{}\n", t.replace('"', "'"), l));
    }
    std::fs::write(&path, body).unwrap();
    path
}

const FAST: &[&str] = &["--set", "threads=1", "--set", "latency_iters=5", "--set", "throughput_iters=2", "--quiet"];

/// A tiny 2-layer Transformer run trained on `csv` with a vocabulary of `vocab`.
fn teacher(dir: &Path, csv: &Path, name: &str, vocab: usize) -> PathBuf {
    let runs = dir.join("runs");
    let o = bin()
        .args(["train", "--recipe", "rt-transformer", "--data"])
        .arg(csv)
        .args(["--name", name, "--runs-dir"])
        .arg(&runs)
        .args(["--set", "model.hidden=32", "--set", "model.heads=4", "--set", "model.ffn=64", "--set", &format!("tokenizer.vocab_size={vocab}")])
        .args(["--set", "train.epochs=2", "--set", "threads=1", "--set", "eval.latency_iters=5", "--set", "eval.throughput_iters=2", "--device", "cpu", "--quiet"])
        .output()
        .unwrap();
    ok(&o);
    runs.join(name)
}

fn metrics(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap()
}

/// `eval --json` reproduces the accuracy the command reported, and `predict` answers.
fn loads_like_any_run(run: &Path) {
    let o = bin().args(["eval", "--json", "--run"]).arg(run).output().unwrap();
    let r: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(r["accuracy"], metrics(run)["test"]["accuracy"], "{}", run.display());
    let mut child = bin().args(["predict", "--run"]).arg(run).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"a gorgeous, moving film\nboring and far too long\n").unwrap();
    let out = ok(&child.wait_with_output().unwrap());
    assert_eq!(out.lines().count(), 2, "{out}");
}

fn weights(run: &Path) -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(run.join("model.safetensors")).unwrap()
}

#[test]
fn distilled_and_pruned_runs_load_with_eval_and_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let data = csv(d);
    let t = teacher(d, &data, "t", 1500);
    let runs = d.join("runs");

    // A fresh 1-layer student, with the teacher-labelled transfer set switched off.
    let o = bin().args(["distill", "--teacher"]).arg(&t).args(["--student", "1x16x2x32", "--epochs", "2", "--runs-dir"]).arg(&runs).args(FAST).output().unwrap();
    let out = ok(&o);
    let s = runs.join("t-distill-1x16x2x32");
    assert!(out.contains("test accuracy") && out.contains(&s.display().to_string()), "{out}");
    let recipe = std::fs::read_to_string(s.join("recipe.toml")).unwrap();
    assert!(recipe.contains("layers = 1") && recipe.contains("hidden = 16"), "{recipe}");
    let m = metrics(&s);
    assert!(m["compression"]["notes"].to_string().contains("teacher logits computed once"), "{m}");
    // The distilled run is compared with the majority-class baseline like any trained run.
    assert!(out.contains("vs majority-class baseline"), "{out}");
    assert_eq!(m["baseline"]["accuracy"], m["test"]["accuracy"], "{m}");
    assert!(std::fs::read_to_string(s.join("report.md")).unwrap().contains("vs majority-class baseline"));
    loads_like_any_run(&s);

    // A DistilBERT-style student keeps the teacher's second layer.
    let o = bin().args(["distill", "--teacher"]).arg(&t).args(["--student", "teacher:1", "--epochs", "1", "--name", "layer1", "--runs-dir"]).arg(&runs).args(FAST).output().unwrap();
    ok(&o);
    loads_like_any_run(&runs.join("layer1"));

    // Structured pruning: half the heads and neurons physically removed, no masks.
    let o = bin().args(["prune", "--run"]).arg(&t).args(["--method", "structured", "--sparsity", "0.5", "--recovery-epochs", "1", "--runs-dir"]).arg(&runs).args(FAST).output().unwrap();
    ok(&o);
    let p = runs.join("t-structured-50");
    assert!(!p.join("masks.safetensors").exists());
    let w = weights(&p);
    let rows = |w: &[(String, Tensor)], what: &str| -> i64 { (0..2).map(|l| w.iter().find(|(n, _)| *n == format!("encoder.layer.{l}.{what}.weight")).unwrap().1.size()[0]).sum() };
    let tw = weights(&t);
    assert_eq!(2 * rows(&w, "attention.self.query"), rows(&tw, "attention.self.query"), "half the heads kept");
    assert_eq!(2 * rows(&w, "intermediate.dense"), rows(&tw, "intermediate.dense"), "half the neurons kept");
    assert!(std::fs::read_to_string(p.join("recipe.toml")).unwrap().contains("layer_shapes"));
    loads_like_any_run(&p);

    // Gradual magnitude pruning to 70%, masks kept through recovery and saved.
    let o = bin().args(["prune", "--run"]).arg(&t).args(["--method", "magnitude", "--sparsity", "0.7", "--schedule", "gradual", "--set", "prune.epochs=1", "--runs-dir"]).arg(&runs).args(FAST).output().unwrap();
    let out = ok(&o);
    assert!(out.contains("sparsity of the pruned weights 70.0%"), "{out}");
    let p = runs.join("t-magnitude-70");
    assert!(p.join("masks.safetensors").exists());
    let (mut zeros, mut n) = (0i64, 0i64);
    for (name, w) in weights(&p) {
        if name.starts_with("encoder.layer.") && name.ends_with(".weight") && w.dim() == 2 {
            zeros += w.eq(0.0).sum(Kind::Int64).int64_value(&[]);
            n += w.numel() as i64;
        }
    }
    assert!((zeros as f64 / n as f64 - 0.7).abs() < 0.01, "after recovery {zeros}/{n} weights are zero");
    loads_like_any_run(&p);

    // One-shot per-layer magnitude without recovery, and movement pruning.
    let out = ok(&bin().args(["prune", "--run"]).arg(&t).args(["--method", "magnitude", "--schedule", "one-shot", "--scope", "per-layer", "--sparsity", "0.5", "--recovery", "none", "--name", "oneshot", "--runs-dir"]).arg(&runs).args(FAST).output().unwrap());
    assert!(out.contains("sparsity of the pruned weights 50.0%") && out.contains("one-shot"), "{out}");
    let out = ok(&bin().args(["prune", "--run"]).arg(&t).args(["--method", "movement", "--sparsity", "0.6", "--set", "prune.epochs=1", "--name", "movement", "--runs-dir"]).arg(&runs).args(FAST).output().unwrap());
    assert!(out.contains("sparsity of the pruned weights 60.0%") && out.contains("movement-hard"), "{out}");
    loads_like_any_run(&runs.join("movement"));

    // 2:4 with distillation recovery, and int8 alone.
    ok(&bin().args(["prune", "--run"]).arg(&t).args(["--method", "2:4", "--recovery", "distill", "--runs-dir"]).arg(&runs).args(FAST).output().unwrap());
    loads_like_any_run(&runs.join("t-2-4-50"));
    let out = ok(&bin().args(["prune", "--run"]).arg(&t).args(["--method", "int8", "--runs-dir"]).arg(&runs).args(FAST).output().unwrap());
    assert!(out.contains("int8"), "{out}");
    let i8 = runs.join("t-int8");
    assert!(i8.join("model-int8.safetensors").exists());
    assert!(std::fs::metadata(i8.join("model-int8.safetensors")).unwrap().len() < std::fs::metadata(i8.join("model.safetensors")).unwrap().len());
    loads_like_any_run(&i8);
}

#[test]
fn bad_compression_inputs_give_clear_errors_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let data = csv(d);
    let t = teacher(d, &data, "t", 1500);
    let runs = d.join("runs");
    let prune = |extra: &[&str]| bin().args(["prune", "--run"]).arg(&t).arg("--runs-dir").arg(&runs).args(extra).args(FAST).output().unwrap();
    fails_with(prune(&["--method", "magnitude", "--sparsity", "1.5"]), &["prune.sparsity", "[0, 1)", "1.5"]);
    fails_with(prune(&["--method", "magnitude", "--sparsity", "-0.1"]), &["prune.sparsity"]);
    fails_with(prune(&["--method", "optimal-brain-surgeon"]), &["unknown pruning method", "optimal-brain-surgeon", "magnitude", "structured"]);
    fails_with(prune(&["--method", "magnitude", "--scope", "everywhere"]), &["everywhere"]);
    fails_with(prune(&["--set", "prune.sparsty=0.5"]), &["sparsty"]);
    fails_with(bin().args(["prune", "--method", "magnitude", "--run"]).arg(d.join("no-such-run")).output().unwrap(), &["no-such-run"]);
    fails_with(bin().args(["distill", "--teacher"]).arg(d.join("no-such-teacher")).output().unwrap(), &["no-such-teacher"]);
    fails_with(bin().args(["distill", "--teacher"]).arg(&t).args(["--student", "big"]).args(FAST).output().unwrap(), &["big", "2x128", "teacher:0,2,4"]);
    fails_with(bin().args(["distill", "--teacher"]).arg(&t).args(["--student", "teacher:0,5"]).args(FAST).output().unwrap(), &["teacher layer 5"]);
    // A student whose tokenizer is not the teacher's.
    let other = teacher(d, &data, "other", 700);
    fails_with(bin().args(["distill", "--teacher"]).arg(&t).arg("--student").arg(&other).args(FAST).output().unwrap(), &["tokenizer", "vocabulary", "other"]);
    assert!(!runs.join("t-distill-big").exists() || std::fs::read_dir(runs.join("t-distill-big")).unwrap().next().is_none());
}
