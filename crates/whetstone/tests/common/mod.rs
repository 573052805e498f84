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
    c
}

/// Assert that `o` succeeded; its stdout.
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}\nstdout: {}\nstderr: {}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
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
