//! Runs people can find and reuse: names from the data, `--run NAME` everywhere, Ctrl-C,
//! resuming a finished run, extending it, and a binary that runs from a plain shell.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{bin, ok};

/// A learnable CSV called `reviews.csv`.
fn reviews(dir: &Path, n: usize) -> std::path::PathBuf {
    let mut body = String::from("text,label\n");
    for i in 0..n {
        let (w, l) = if i % 2 == 0 { ("great", "pos") } else { ("dull", "neg") };
        body.push_str(&format!("the film number {} was {w} and long,{l}\n", i % 17));
    }
    let p = dir.join("reviews.csv");
    std::fs::write(&p, body).unwrap();
    p
}

fn train(dir: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.current_dir(dir).args(["train", "--data", "reviews.csv", "--no-bench", "--set", "threads=1", "--set", "model.embed_dim=16", "--set", "model.channels=8"]);
    c.args(extra);
    c
}

#[test]
fn runs_are_named_after_the_data_found_by_name_and_finished_runs_stay_finished() {
    let tmp = tempfile::tempdir().unwrap();
    reviews(tmp.path(), 400);
    ok(&train(tmp.path(), &["--epochs", "2", "--keep-checkpoint"]).output().unwrap());
    let run = tmp.path().join("runs/reviews-textcnn");
    assert!(run.join("model.safetensors").is_file() && run.join("checkpoint.safetensors").is_file());
    let metrics_before = std::fs::read(run.join("metrics.json")).unwrap();

    // eval and predict take the run's name (or its folder).
    let out = ok(&bin().current_dir(tmp.path()).args(["eval", "--run", "reviews-textcnn"]).output().unwrap());
    assert!(out.contains("accuracy"), "{out}");
    let mut p = bin().current_dir(tmp.path()).args(["predict", "--run", "reviews-textcnn"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(p.stdin.as_mut().unwrap(), b"the film was great\n").unwrap();
    drop(p.stdin.take());
    let out = ok(&p.wait_with_output().unwrap());
    assert!((out.starts_with("pos\t") || out.starts_with("neg\t")) && out.lines().count() == 1, "{out}");

    // Resuming a finished run changes nothing and says how to extend it.
    let out = ok(&bin().current_dir(tmp.path()).args(["train", "--resume", "reviews-textcnn"]).output().unwrap());
    assert!(out.contains("already finished its 2 epoch(s); nothing changed") && out.contains("--epochs N"), "{out}");
    assert_eq!(std::fs::read(run.join("metrics.json")).unwrap(), metrics_before, "metrics.json must not change");
    // --epochs that does not extend it, and another recipe, are refused.
    let o = bin().current_dir(tmp.path()).args(["train", "--resume", "reviews-textcnn", "--epochs", "2"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("does not extend"));
    let o = bin().current_dir(tmp.path()).args(["train", "--resume", "reviews-textcnn", "--recipe", "rt-transformer"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("differs from it") && err.contains("model.kind: textcnn → transformer") && err.lines().count() == 1, "{err}");
    // --epochs 3 extends it, and the recipe records it.
    let out = ok(&bin().current_dir(tmp.path()).args(["train", "--resume", "reviews-textcnn", "--epochs", "3"]).output().unwrap());
    assert!(out.contains("test accuracy"), "{out}");
    let recipe = std::fs::read_to_string(run.join("recipe.toml")).unwrap();
    assert!(recipe.contains("epochs = 3"), "{recipe}");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["train"]["epochs"].as_u64(), Some(3), "{m}");
    // Without --keep-checkpoint the finished run keeps only its model, and cannot be extended.
    ok(&train(tmp.path(), &["--epochs", "1", "--name", "short"]).output().unwrap());
    assert!(!tmp.path().join("runs/short/checkpoint.safetensors").exists());
    let o = bin().current_dir(tmp.path()).args(["train", "--resume", "short", "--epochs", "2"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--keep-checkpoint"));
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_prints_the_resume_command() {
    let tmp = tempfile::tempdir().unwrap();
    reviews(tmp.path(), 3000);
    let child = train(tmp.path(), &["--epochs", "500", "--set", "train.patience=0"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let log = tmp.path().join("runs/reviews-textcnn/metrics.jsonl");
    let t0 = Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|s| s.contains("\"split\":\"train\"")) {
        assert!(t0.elapsed() < Duration::from_secs(120), "training never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: sending SIGINT to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let sent = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(sent.elapsed() < Duration::from_secs(30));
    let out = ok(&o);
    assert!(out.contains("its checkpoint is saved. Resume with: whetstone train --resume runs/reviews-textcnn"), "{out}");
    assert!(tmp.path().join("runs/reviews-textcnn/checkpoint.safetensors").is_file());
}

#[test]
fn the_binary_runs_from_a_plain_shell() {
    // No LD_LIBRARY_PATH: the binary finds libtorch through its RUNPATH.
    let o = Command::new(env!("CARGO_BIN_EXE_whetstone")).env_clear().env("PATH", "/usr/bin:/bin").arg("list").output().unwrap();
    let out = ok(&o);
    assert!(out.contains("embedded recipes"), "{out}");
}

#[test]
fn config_prints_the_resolved_recipe_and_errors_blame_the_flag() {
    let out = ok(&bin().args(["config", "--set", "optim.lr=3e-4", "--set", "train.epochs=2"]).output().unwrap());
    let v: toml::Value = toml::from_str(&out).unwrap();
    assert_eq!(v["optim"]["lr"].as_float(), Some(3e-4));
    assert_eq!(v["train"]["epochs"].as_integer(), Some(2));
    // Defaults the embedded recipe does not write are filled in.
    assert_eq!(v["train"]["checkpoint_minutes"].as_float(), Some(10.0), "{out}");
    for (args, start) in [
        (vec!["train", "--set", "train.epochs=x"], "error: --set train.epochs=x: "),
        (vec!["train", "--device", "cuda:7"], "error: --device cuda:7: "),
        (vec!["config", "--set", "optim.lr=-1"], "error: --set optim.lr=-1: "),
    ] {
        let o = bin().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.starts_with(start) && err.trim_end().lines().count() == 1, "{args:?}: {err}");
        assert!(!err.contains("embedded recipe"), "{args:?} blames the recipe: {err}");
    }
}

#[test]
fn eval_reads_a_file_with_the_runs_own_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let mut body = String::from("review,sentiment\n");
    for i in 0..300 {
        body.push_str(&format!("the film number {} was {},{}\n", i % 13, if i % 2 == 0 { "great" } else { "dull" }, if i % 2 == 0 { "pos" } else { "neg" }));
    }
    std::fs::write(tmp.path().join("mine.csv"), &body).unwrap();
    let mut c = bin();
    c.current_dir(tmp.path()).args(["train", "--data", "mine.csv", "--text-col", "review", "--label-col", "sentiment", "--epochs", "2", "--no-bench", "--set", "threads=1", "--set", "model.embed_dim=16", "--set", "model.channels=8"]);
    ok(&c.output().unwrap());
    // No --text-col / --label-col: the run's recorded columns.
    let out = ok(&bin().current_dir(tmp.path()).args(["eval", "--run", "mine-textcnn", "--data", "mine.csv"]).output().unwrap());
    assert!(out.contains("on mine.csv (300 examples)"), "{out}");
    // A label the run does not know is named with the ones it does.
    std::fs::write(tmp.path().join("odd.csv"), "review,sentiment\nfine film,meh\n").unwrap();
    let o = bin().current_dir(tmp.path()).args(["eval", "--run", "mine-textcnn", "--data", "odd.csv"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("odd.csv:2: label `meh`") && err.contains("neg, pos"), "{err}");
}
