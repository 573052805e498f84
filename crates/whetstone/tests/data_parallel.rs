//! Data-parallel training through the CLI: `train --nproc 2` (Gloo over loopback), a killed
//! rank, and resuming a data-parallel run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{bin, ok, rt_csv};

const SETS: &[&str] = &[
    "model.embed_dim=16", "model.channels=8", "model.dropout=0", "tokenizer.vocab_size=500", "train.batch_size=16",
    "train.checkpoint_every=1", "train.patience=0", "eval.latency_iters=0", "threads=1",
];

fn train(csv: &Path, runs: &Path, name: &str, epochs: u64) -> Command {
    let mut c = bin();
    c.args(["train", "--data"]).arg(csv).arg("--runs-dir").arg(runs).args(["--name", name, "--set", &format!("train.epochs={epochs}")]);
    for s in SETS {
        c.args(["--set", s]);
    }
    c
}

fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn nproc_2_trains_reports_the_effective_batch_and_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = rt_csv(tmp.path(), "rt.csv", 480);
    let runs = tmp.path().join("runs");

    // An uninterrupted 2-process run.
    let o = train(&csv, &runs, "whole", 2).args(["--nproc", "2"]).output().unwrap();
    let out = ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("test accuracy"), "{out}");
    assert!(err.contains("data parallel: 2 processes (gloo), effective batch 2 × 16 × 1 (grad_accum) = 32"), "{err}");
    assert!(err.contains("rank 1 of 2:") && err.contains("rank 0 writes the run"), "{err}");
    let m = metrics(&runs.join("whole"));
    assert_eq!((m["train"]["world_size"].as_u64(), m["train"]["effective_batch"].as_u64()), (Some(2), Some(32)), "{m}");
    // 480 rows → 384 training examples → 12 global batches of 32 per epoch.
    assert_eq!(m["train"]["steps"].as_u64(), Some(24), "{m}");
    let folders: Vec<_> = std::fs::read_dir(&runs).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(folders.len(), 1, "only rank 0 makes a run folder: {folders:?}");

    // The same run stopped after 7 steps (as a kill would) and resumed with 2 processes ends
    // bit-identical.
    let part = runs.join("part");
    ok(&train(&csv, &runs, "part", 2).args(["--nproc", "2", "--stop-after", "7"]).output().unwrap());
    assert!(part.join("checkpoint.safetensors").is_file());
    // At another world size the resume is refused, naming why.
    let o = bin().args(["train", "--resume"]).arg(&part).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("data-parallel world size"), "{err}");
    ok(&bin().args(["train", "--nproc", "2", "--resume"]).arg(&part).output().unwrap());
    let a = std::fs::read(runs.join("whole/model.safetensors")).unwrap();
    let b = std::fs::read(part.join("model.safetensors")).unwrap();
    assert!(a == b, "the resumed 2-process run differs from the uninterrupted one");
}

#[test]
fn ranks_with_different_recipes_all_fail_naming_the_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = rt_csv(tmp.path(), "rt.csv", 200);
    let runs = tmp.path().join("runs");
    let port = free_port().to_string();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            train(&csv, &runs, "mismatch", 1)
                .args(["--set", &format!("seed={}", 40 + rank)])
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .env("WHETSTONE_DIST_TIMEOUT", "30")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (rank, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "rank {rank}: {err}");
        assert!(err.contains(&format!("rank {rank} of 2: the recipe is not the same on every rank (rank(s) 1 differ")) && err.contains("seed"), "rank {rank}: {err}");
    }
    assert!(!runs.exists(), "nothing is written when the ranks disagree");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_killed_rank_makes_the_other_fail_within_the_timeout_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = rt_csv(tmp.path(), "rt.csv", 480);
    let runs = tmp.path().join("runs");
    let port = free_port().to_string();
    let timeout = 20u64;
    let spawn = |rank: usize| -> std::process::Child {
        train(&csv, &runs, "killed", 200)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", "2")
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .env("WHETSTONE_DIST_TIMEOUT", timeout.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut r0 = spawn(0);
    let mut r1 = spawn(1);
    // Wait until training is under way (rank 0 logs steps), then kill rank 1.
    let log: PathBuf = runs.join("killed/metrics.jsonl");
    let t0 = Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|s| s.contains("\"split\":\"train\"")) {
        assert!(t0.elapsed() < Duration::from_secs(120), "training never started");
        assert!(r0.try_wait().unwrap().is_none(), "rank 0 ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    r1.kill().unwrap();
    r1.wait().unwrap();
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = r0.try_wait().unwrap() {
            break s;
        }
        assert!(killed.elapsed() < Duration::from_secs(timeout + 30), "rank 0 still running {timeout} s + 30 s after rank 1 died");
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = killed.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(r0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("rank 0 of 2:") && err.contains("no answer from rank 1"), "{err}");
    assert!(took < Duration::from_secs(timeout + 10), "took {took:?}: {err}");
    // The killed run resumes: its checkpoint is there.
    assert!(runs.join("killed/checkpoint.safetensors").is_file());
}
