//! `--precision` through the real binary: bf16 training records its precision in the run's
//! metrics and report and resumes bit-identically; fp16 on a CPU and unknown precisions are
//! refused before anything is written; eval/predict take --precision too.

mod common;

use common::{bin, ok, fails_with};
use std::path::Path;
use std::process::Command;

fn csv(dir: &Path, n: usize) -> std::path::PathBuf {
    common::rt_csv(dir, "rt.csv", n)
}

/// A tiny Transformer run on `data`.
fn train(data: &Path, runs: &Path, name: &str) -> Command {
    let mut c = bin();
    c.args(["train", "--recipe", "rt-transformer", "--data"]).arg(data).arg("--runs-dir").arg(runs).args([
        "--name", name, "--set", "model.layers=1", "--set", "model.hidden=32", "--set", "model.ffn=64", "--set", "tokenizer.vocab_size=400", "--set", "train.epochs=2",
        "--set", "train.checkpoint_every=2", "--set", "train.patience=0", "--set", "eval.latency_iters=2", "--set", "eval.throughput_iters=1", "--set", "threads=1", "--device", "cpu", "--quiet",
    ]);
    c
}

#[test]
fn bf16_runs_record_their_precision_and_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = csv(tmp.path(), 240);
    let runs = tmp.path().join("runs");
    ok(&train(&data, &runs, "whole").args(["--precision", "bf16"]).output().unwrap());
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(runs.join("whole/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["train"]["precision"], "bf16");
    assert!(std::fs::read_to_string(runs.join("whole/report.md")).unwrap().contains("| precision | bf16 |"));
    // `--set precision=bf16` is the same setting; killed after 3 steps and resumed, the model
    // is bit-identical to the uninterrupted run's.
    let out = ok(&train(&data, &runs, "cut").args(["--set", "precision=bf16", "--stop-after", "3"]).output().unwrap());
    assert!(out.contains("interrupted"), "{out}");
    ok(&bin().args(["train", "--resume"]).arg(runs.join("cut")).args(["--quiet"]).output().unwrap());
    let a = std::fs::read(runs.join("whole/model.safetensors")).unwrap();
    let b = std::fs::read(runs.join("cut/model.safetensors")).unwrap();
    assert!(a == b, "the resumed bf16 run's model differs from the uninterrupted run's");
    // Inference in either precision.
    let fp32 = ok(&bin().args(["eval", "--run"]).arg(runs.join("whole")).args(["--precision", "fp32", "--json"]).output().unwrap());
    let bf16 = ok(&bin().args(["eval", "--run"]).arg(runs.join("whole")).args(["--json"]).output().unwrap());
    let acc = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["accuracy"].as_f64().unwrap();
    assert!((acc(&fp32) - acc(&bf16)).abs() < 0.05, "fp32 {} vs bf16 {}", acc(&fp32), acc(&bf16));
    let o = bin().args(["eval", "--run"]).arg(runs.join("whole")).args(["--precision", "fp16"]).output().unwrap();
    fails_with(&o, &["fp16", "CUDA"]);
}

#[test]
fn impossible_precisions_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = csv(tmp.path(), 120);
    let runs = tmp.path().join("runs");
    fails_with(&train(&data, &runs, "a").args(["--precision", "fp16"]).output().unwrap(), &["fp16", "CUDA", "bf16"]);
    fails_with(&train(&data, &runs, "b").args(["--set", "precision=\"half\""]).output().unwrap(), &["precision", "half", "fp32", "bf16", "fp16"]);
    let o = train(&data, &runs, "c").args(["--precision", "fp8"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "clap refuses an unknown --precision value");
    assert!(String::from_utf8_lossy(&o.stderr).contains("fp32, bf16 or fp16"));
    assert!(std::fs::read_dir(&runs).map_or(true, |mut d| d.next().is_none()), "a refused run left a folder");
}
