//! Every `whetstone prune --method` × `--recovery` combination, end to end on one tiny
//! Transformer run: each succeeds, writes a complete run folder (masks for unstructured
//! sparsity, the int8 weights for int8, a smaller dense model for structured pruning, curves
//! and TensorBoard events when a recovery phase trained, no scratch or temporary files), reports
//! the sparsity its weights have, and loads with `eval` and `predict`.
//!
//! (`--method 2:4 --recovery none` used to fail with "masks.safetensors.tmp: NotFound"; a
//! gradual phase shorter than `prune.every` steps ended at 0% sparsity; soft movement pruning
//! removed every weight.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use tch::{Kind, Tensor};

mod common;
use common::{bin, ok, rt_csv};

const METHODS: [&str; 7] = ["magnitude", "movement", "movement-soft", "2:4", "structured", "structured-taylor", "int8"];
const RECOVERIES: [&str; 3] = ["none", "finetune", "distill"];
/// Short phases, no timing, one thread.
const FAST: &[&str] = &["--set", "recovery.epochs=1", "--set", "prune.epochs=1", "--set", "latency_iters=0", "--set", "threads=1", "--quiet"];

fn metrics(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap()
}

fn weights(run: &Path) -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(run.join("model.safetensors")).unwrap()
}

/// The weights pruning selects (2-D, outside the embeddings, the classifier and LayerNorms).
fn prunable(name: &str, w: &Tensor) -> bool {
    w.dim() == 2 && name.ends_with(".weight") && !["embeddings", "classifier", "LayerNorm"].iter().any(|x| name.contains(x))
}

/// Fraction of zeros over the prunable weights of `run`'s model.
fn zero_fraction(run: &Path) -> f64 {
    let (mut zeros, mut n) = (0i64, 0i64);
    for (name, w) in weights(run) {
        if prunable(&name, &w) {
            zeros += w.eq(0.0).sum(Kind::Int64).int64_value(&[]);
            n += w.numel() as i64;
        }
    }
    zeros as f64 / n as f64
}

/// Rows of `encoder.layer.*.{what}.weight`, summed over the layers.
fn rows(run: &Path, what: &str) -> i64 {
    weights(run).iter().filter(|(n, _)| n.starts_with("encoder.layer.") && n.ends_with(&format!(".{what}.weight"))).map(|(_, w)| w.size()[0]).sum()
}

/// `eval --json` reproduces the test accuracy the run recorded, and `predict` answers each line.
fn loads_like_any_run(run: &Path) {
    let o = bin().args(["eval", "--json", "--run"]).arg(run).output().unwrap();
    let r: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(r["accuracy"], metrics(run)["test"]["accuracy"], "eval of {}", run.display());
    let mut child = bin().args(["predict", "--run"]).arg(run).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"a gorgeous, moving film\nboring and far too long\n").unwrap();
    let out = ok(&child.wait_with_output().unwrap());
    assert_eq!(out.lines().count(), 2, "predict of {}: {out}", run.display());
}

/// One combination: prune `teacher` and check the result.
fn check(teacher: &Path, runs: &Path, method: &str, recovery: &str) {
    let name = format!("{}-{recovery}", method.replace(':', "-"));
    let o = bin().args(["prune", "--run"]).arg(teacher).args(["--method", method, "--recovery", recovery, "--name", &name, "--runs-dir"]).arg(runs).args(FAST).output().unwrap();
    let out = ok(&o);
    let run = runs.join(&name);
    let what = format!("{method} / {recovery}");
    assert!(out.contains(&format!("run written to {}", run.display())), "{what}: {out}");

    // The run folder: what every run has, and nothing left over.
    let mut files: Vec<String> = std::fs::read_dir(&run).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    files.sort();
    for f in ["recipe.toml", "tokenizer.json", "labels.json", "model.safetensors", "metrics.json", "report.md", "compression.json"] {
        assert!(files.iter().any(|x| x == f), "{what}: no {f} in {files:?}");
    }
    let unstructured = ["magnitude", "movement", "movement-soft", "2:4"].contains(&method);
    assert_eq!(files.iter().any(|f| f == "masks.safetensors"), unstructured, "{what}: masks.safetensors in {files:?}");
    assert_eq!(files.iter().any(|f| f == "model-int8.safetensors"), method == "int8", "{what}: model-int8.safetensors in {files:?}");
    let trained = recovery != "none" && method != "int8";
    assert_eq!(files.iter().any(|f| f == "metrics.jsonl"), trained, "{what}: a training log only after a recovery phase: {files:?}");
    assert_eq!(files.iter().filter(|f| f.starts_with("events.out.tfevents.")).count(), usize::from(trained), "{what}: TensorBoard events only after a recovery phase: {files:?}");
    for f in &files {
        assert!(!f.ends_with(".tmp") && f != "checkpoint.safetensors" && f != "pruning-phase", "{what}: {f} left in {files:?}");
    }

    // The method it reports, and the sparsity its weights have.
    let m = metrics(&run);

    // The majority-class baseline, next to the test accuracy: in metrics.json, report.md and
    // on the console.
    let b = &m["baseline"];
    assert_eq!(b["accuracy"], m["test"]["accuracy"], "{what}: {b}");
    let support: Vec<f64> = m["test"]["per_class"].as_array().unwrap().iter().map(|c| c["support"].as_f64().unwrap()).collect();
    let majority = support.iter().copied().fold(0.0, f64::max) / support.iter().sum::<f64>();
    assert!((b["baseline"].as_f64().unwrap() - majority).abs() < 1e-12, "{what}: baseline {b}, majority share {majority}");
    assert!(out.contains("vs majority-class baseline"), "{what}: {out}");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("vs majority-class baseline"), "{what}: report.md lacks the baseline:\n{report}");
    let method_text = m["compression"]["method"].as_str().unwrap().to_string();
    match recovery {
        "none" => assert!(!method_text.contains("recovery"), "{what}: {method_text}"),
        _ if method == "int8" => assert!(method_text.contains("int8"), "{what}: {method_text}"),
        r => assert!(method_text.contains(&format!("{r} recovery")), "{what}: {method_text}"),
    }
    let sparsity = m["compression"]["sparsity"].as_f64();
    if unstructured {
        let s = sparsity.unwrap_or_else(|| panic!("{what}: no sparsity in {m}"));
        assert!(out.contains(&format!("sparsity of the pruned weights {:.1}%", 100.0 * s)), "{what}: {out}");
        let zeros = zero_fraction(&run);
        assert!((zeros - s).abs() < 0.005, "{what}: reported sparsity {s} but {zeros} of the weights are zero");
        if method == "movement-soft" {
            // The threshold, not the target, decides; but neither nothing nor everything.
            assert!(s > 0.05 && s < 0.95, "{what}: sparsity {s}");
        } else {
            assert!((s - 0.5).abs() < 0.01, "{what}: sparsity {s}, asked for 0.5");
        }
        if method == "2:4" {
            for (name, w) in weights(&run) {
                if prunable(&name, &w) {
                    let kept = w.ne(0.0).to_kind(Kind::Float).view([-1, 4]).sum_dim_intlist(-1, false, Kind::Float);
                    assert_eq!(kept.le(2.0).all().int64_value(&[]), 1, "{what}: {name} has a group of 4 with more than 2 weights");
                }
            }
        }
    } else {
        assert!(sparsity.is_none(), "{what}: sparsity {sparsity:?}");
        assert!(!out.contains("sparsity of the pruned weights"), "{what}: {out}");
        assert!(zero_fraction(&run) < 0.01, "{what}: zeros in a dense model");
    }
    if method.starts_with("structured") {
        assert_eq!(2 * rows(&run, "attention.self.query"), rows(teacher, "attention.self.query"), "{what}: half the heads kept");
        assert_eq!(2 * rows(&run, "intermediate.dense"), rows(teacher, "intermediate.dense"), "{what}: half the neurons kept");
    }
    if method == "int8" {
        assert!(std::fs::metadata(run.join("model-int8.safetensors")).unwrap().len() < std::fs::metadata(run.join("model.safetensors")).unwrap().len());
    }
    loads_like_any_run(&run);
}

#[test]
fn every_method_with_every_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let csv = rt_csv(d, "rt.csv", 200);
    let runs = d.join("runs");
    let o = bin()
        .args(["train", "--recipe", "rt-transformer", "--data"])
        .arg(&csv)
        .args(["--name", "t", "--runs-dir"])
        .arg(&runs)
        .args(["--set", "model.hidden=32", "--set", "model.heads=4", "--set", "model.ffn=64", "--set", "tokenizer.vocab_size=500"])
        .args(["--set", "train.epochs=1", "--set", "threads=1", "--set", "eval.latency_iters=0", "--device", "cpu", "--quiet"])
        .output()
        .unwrap();
    ok(&o);
    let teacher: PathBuf = runs.join("t");

    // Two at a time: each process runs one thread.
    let queue = Mutex::new(METHODS.iter().flat_map(|m| RECOVERIES.iter().map(move |r| (*m, *r))).collect::<Vec<_>>());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some((m, r)) = queue.lock().unwrap().pop() else { break };
                if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&teacher, &runs, m, r))) {
                    let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                    failures.lock().unwrap().push(format!("--method {m} --recovery {r}: {msg}"));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} of {} combinations failed:\n{}", failures.len(), METHODS.len() * RECOVERIES.len(), failures.join("\n\n"));
}
