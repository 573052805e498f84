//! What the CLI test binaries share: the binary, its success, and rotten-tomatoes as a CSV.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use whetstone_data::{load_splits, DataSource};

/// The `whetstone` binary. Tiny models: one intra-op thread avoids OpenMP spin-waits on a busy
/// machine.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whetstone"));
    c.env("OMP_NUM_THREADS", "1");
    // These tests were written for the default recipe on small files; tests/small_data.rs
    // tests the small-data defaults (it removes this).
    c.env("WHETSTONE_SMALL_DATA", "off");
    c
}

/// Assert that `o` succeeded; its stdout.
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}\nstdout: {}\nstderr: {}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Assert that `o` failed the way bad input must: exit status 1 (not a panic or a signal), no
/// panic message, and every one of `needles` in stderr. Returns stderr.
pub fn fails_with(o: impl std::borrow::Borrow<Output>, needles: &[&str]) -> String {
    let o = o.borrow();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "expected exit code 1 (not success, a panic or a signal): {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`: {err}");
    }
    err
}

/// The first `n` rotten-tomatoes training sentences as `dir/name` (a CSV with text,label).
pub fn rt_csv(dir: &Path, name: &str, n: usize) -> PathBuf {
    let s = load_splits(&DataSource::Named { name: "rotten-tomatoes".into() }, 0.1, 0.1, 3).expect("rotten-tomatoes (cargo xtask data)");
    let path = dir.join(name);
    let mut w = csv::Writer::from_path(&path).unwrap();
    w.write_record(["text", "label"]).unwrap();
    for (t, l) in s.train.texts.iter().zip(&s.train.labels).take(n) {
        w.write_record([t.clone(), l.to_string()]).unwrap();
    }
    w.flush().unwrap();
    path
}

/// A tiny TextCNN trained once on 400 rotten-tomatoes sentences into `<tmp>/<tag>-<pid>/runs/tiny`
/// (the run the predict and serve tests answer with), with `extra` recipe settings.
pub fn tiny_run(tag: &str, extra: &[&str]) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let csv = rt_csv(&root, "rt.csv", 400);
    let runs = root.join("runs");
    let mut c = bin();
    c.args(["train", "--data"]).arg(&csv).args(["--name", "tiny", "--runs-dir"]).arg(&runs);
    c.args(["--set", "model.embed_dim=16", "--set", "model.channels=8", "--set", "tokenizer.vocab_size=1000", "--set", "train.epochs=1", "--device", "cpu", "--quiet"]);
    for e in extra {
        c.args(["--set", e]);
    }
    ok(&c.output().unwrap());
    runs.join("tiny")
}
