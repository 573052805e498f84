//! The `whetstone` binary end to end: a user's own CSV, eval, predict, a real SIGKILL and
//! resume, and the bad-input cases (clear message, non-zero exit, no panic).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use whetstone_data::{load_splits, DataSource};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whetstone"));
    // Written for the default recipe on small files (tests/small_data.rs tests the small-data defaults).
    c.env("WHETSTONE_SMALL_DATA", "off");
    c
}

/// A user-style CSV with unfamiliar column names, from a slice of rotten-tomatoes.
fn user_csv(dir: &Path, n: usize) -> PathBuf {
    let s = load_splits(&DataSource::Named { name: "rotten-tomatoes".into() }, 0.1, 0.1, 3).expect("rotten-tomatoes (cargo xtask data)");
    let path = dir.join("reviews.csv");
    let mut w = csv::Writer::from_path(&path).unwrap();
    w.write_record(["id", "review", "sentiment"]).unwrap();
    for (i, (t, l)) in s.train.texts.iter().zip(&s.train.labels).take(n).enumerate() {
        w.write_record([i.to_string(), t.clone(), if *l == 1 { "pos".into() } else { "neg".into() }]).unwrap();
    }
    w.flush().unwrap();
    path
}

const TINY: &[&str] = &[
    "--set", "model.embed_dim=32", "--set", "model.channels=16", "--set", "tokenizer.vocab_size=2000",
    "--set", "train.epochs=2", "--set", "train.batch_size=32", "--set", "eval.latency_iters=20", "--set", "eval.throughput_iters=3",
    "--device", "cpu", "--quiet",
];

fn ok(o: &Output) {
    assert!(o.status.success(), "failed: {}\nstdout: {}\nstderr: {}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

fn fails_with(o: Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure, got success; stderr: {err}");
    assert_eq!(o.status.code(), Some(1), "expected exit code 1 (not a panic/signal): {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`: {err}");
    }
}

#[test]
fn trains_on_a_users_csv_then_evaluates_and_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = user_csv(tmp.path(), 1200);
    let runs = tmp.path().join("runs");
    let o = bin()
        .args(["train", "--data"])
        .arg(&csv)
        .args(["--text-col", "review", "--label-col", "sentiment", "--name", "mine", "--runs-dir"])
        .arg(&runs)
        .args(TINY)
        .output()
        .unwrap();
    ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("test accuracy") && stdout.contains("runs/mine"), "{stdout}");
    let run = runs.join("mine");
    for f in ["recipe.toml", "tokenizer.json", "labels.json", "model.safetensors", "metrics.jsonl", "metrics.json", "report.md", "curves.png", "curves.svg"] {
        assert!(run.join(f).exists(), "{f} missing from the run folder");
    }
    // A finished run keeps its model, not its resumable checkpoint (unless --keep-checkpoint).
    assert!(!run.join("checkpoint.safetensors").exists());
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["test"]["n"], 120);
    assert!(metrics["efficiency"]["latency_b1"]["p95_ms"].as_f64().unwrap() > 0.0);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("neg") && report.contains("pos") && report.contains("curves.png"), "{report}");

    // A second run with the same name never overwrites the first.
    let o = bin().args(["train", "--data"]).arg(&csv).args(["--text-col", "review", "--label-col", "sentiment", "--name", "mine", "--runs-dir"]).arg(&runs).args(TINY).args(["--set", "train.epochs=1"]).output().unwrap();
    ok(&o);
    assert!(runs.join("mine-2").join("model.safetensors").exists());

    // eval on the run's own test split reproduces the reported test accuracy exactly.
    let o = bin().args(["eval", "--json", "--run"]).arg(&run).output().unwrap();
    ok(&o);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["accuracy"], metrics["test"]["accuracy"]);

    // eval on a file with a label the model never saw names the file and line.
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "review,sentiment\ngreat fun,pos\nmeh,neutral\n").unwrap();
    fails_with(bin().args(["eval", "--run"]).arg(&run).arg("--data").arg(&bad).args(["--text-col", "review", "--label-col", "sentiment"]).output().unwrap(), &["bad.csv:3", "neutral"]);

    // predict reads stdin, prints label and probability per line.
    let mut child = bin().args(["predict", "--run"]).arg(&run).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"a gorgeous, moving film\nboring and far too long\n").unwrap();
    let o = child.wait_with_output().unwrap();
    ok(&o);
    let lines: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        let (label, p) = l.split_once('\t').unwrap();
        assert!(label == "pos" || label == "neg", "{l}");
        let p: f64 = p.parse().unwrap();
        assert!((0.5..=1.0).contains(&p), "{l}");
    }
}

/// A small task a model can learn: neutral filler words around one or two sentiment words,
/// "good", "great", ... → pos and "bad", "awful", ... → neg. Seeded, `n` rows.
fn learnable_csv(dir: &Path, n: usize) -> PathBuf {
    const POS: &[&str] = &["good", "great", "wonderful", "excellent", "lovely"];
    const NEG: &[&str] = &["bad", "awful", "terrible", "dull", "boring"];
    const FILLER: &[&str] = &["the", "film", "movie", "plot", "story", "actors", "was", "is", "really", "quite", "very", "and", "a", "with", "its", "music", "ending", "cast", "script", "scenes"];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |k: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % k as u64) as usize
    };
    let path = dir.join("learnable.csv");
    let mut w = csv::Writer::from_path(&path).unwrap();
    w.write_record(["review", "sentiment"]).unwrap();
    for i in 0..n {
        let pos = i % 2 == 0;
        let mut words: Vec<&str> = (0..4 + next(6)).map(|_| FILLER[next(FILLER.len())]).collect();
        for _ in 0..1 + next(2) {
            let word = if pos { POS[next(POS.len())] } else { NEG[next(NEG.len())] };
            let at = next(words.len() + 1);
            words.insert(at, word);
        }
        w.write_record([words.join(" "), if pos { "pos".into() } else { "neg".into() }]).unwrap();
    }
    w.flush().unwrap();
    path
}

/// On a task with a clear signal, the trained model is far above chance on its test split,
/// and `predict` labels a plainly positive and a plainly negative sentence correctly.
#[test]
fn learns_a_learnable_task_and_predicts_the_right_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = learnable_csv(tmp.path(), 600);
    let runs = tmp.path().join("runs");
    let o = bin()
        .args(["train", "--data"])
        .arg(&csv)
        .args(["--text-col", "review", "--label-col", "sentiment", "--name", "learnable", "--runs-dir"])
        .arg(&runs)
        .args(TINY)
        .args(["--set", "train.epochs=4", "--set", "optim.lr=5e-3", "--set", "eval.latency_iters=0", "--set", "threads=1"])
        .output()
        .unwrap();
    ok(&o);
    let run = runs.join("learnable");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["test"]["n"], 60);
    let acc = metrics["test"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.9, "test accuracy {acc} on a task with a one-word signal (chance 0.5)");

    let mut child = bin().args(["predict", "--run"]).arg(&run).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"the film was great and the cast wonderful
an awful movie with a boring plot
").unwrap();
    let o = child.wait_with_output().unwrap();
    ok(&o);
    let labels: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(|l| l.split('\t').next().unwrap().to_string()).collect();
    assert_eq!(labels, ["pos", "neg"], "predict output: {}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn a_killed_run_resumes_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = user_csv(tmp.path(), 3000);
    let runs = tmp.path().join("runs");
    let args = |name: &str| {
        let mut c = bin();
        c.args(["train", "--data"]).arg(&csv).args(["--text-col", "review", "--label-col", "sentiment", "--name", name, "--runs-dir"]).arg(&runs).args(TINY);
        c.args(["--set", "train.epochs=4", "--set", "train.checkpoint_every=3", "--set", "train.eval_every=25", "--set", "train.batch_size=16", "--set", "name=\"same\"", "--keep-checkpoint"]);
        c
    };
    // The run name is part of the recipe, so both runs use the same one, in different folders.
    let o = args("same").output().unwrap();
    ok(&o);
    let full = runs.join("same");

    let mut child = args("same").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let killed = runs.join("same-2");
    let start = Instant::now();
    loop {
        assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed");
        if killed.join("checkpoint.safetensors").exists() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let it train a little past that checkpoint (tens of steps here), but kill it long before
    // the end: the rest of the run takes about 1 s on a 2-core CPU, ~35× this wait.
    std::thread::sleep(Duration::from_millis(30));
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run should have been killed");
    assert!(!killed.join("metrics.json").exists(), "the killed run must not have finished");

    let o = bin().args(["train", "--quiet", "--keep-checkpoint", "--resume"]).arg(&killed).output().unwrap();
    ok(&o);
    let a = whetstone_train::Checkpoint::load(&full.join("checkpoint.safetensors")).unwrap();
    let b = whetstone_train::Checkpoint::load(&killed.join("checkpoint.safetensors")).unwrap();
    assert_eq!(a.progress.step, b.progress.step);
    assert_eq!(a.model.len(), b.model.len());
    for ((na, ta), (nb, tb)) in a.model.iter().zip(&b.model) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after resume");
    }
    let ma = std::fs::read(full.join("model.safetensors")).unwrap();
    let mb = std::fs::read(killed.join("model.safetensors")).unwrap();
    assert!(ma == mb, "best model differs after resume");
}

#[test]
fn bad_inputs_give_clear_errors_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let train = |file: &Path, extra: &[&str]| bin().args(["train", "--runs-dir"]).arg(d.join("runs")).arg("--data").arg(file).args(TINY).args(extra).output().unwrap();

    let f = d.join("cols.csv");
    std::fs::write(&f, "review,label\nfine,1\n").unwrap();
    fails_with(train(&f, &[]), &["cols.csv", "text", "review"]);

    let f = d.join("empty.csv");
    std::fs::write(&f, "").unwrap();
    fails_with(train(&f, &[]), &["empty.csv", "empty"]);

    let f = d.join("blank.csv");
    std::fs::write(&f, "text,label\ngood,1\n   ,0\n").unwrap();
    fails_with(train(&f, &[]), &["blank.csv:3", "empty", "text"]);

    let f = d.join("bytes.tsv");
    std::fs::write(&f, b"text\tlabel\ngood\t1\nbad \xff\xfe bytes\t0\n").unwrap();
    fails_with(train(&f, &[]), &["bytes.tsv:3", "UTF-8"]);

    let (tr, te) = (d.join("tr.jsonl"), d.join("te.jsonl"));
    std::fs::write(&tr, "{\"text\": \"good\", \"label\": 1}\n{\"text\": \"bad\", \"label\": 0}\n".repeat(10)).unwrap();
    std::fs::write(&te, "{\"text\": \"good\", \"label\": 1}\n{\"text\": \"odd\", \"label\": 2}\n").unwrap();
    fails_with(train(&tr, &["--test", te.to_str().unwrap()]), &["te.jsonl:2", "2"]);

    fails_with(train(&d.join("nope.csv"), &[]), &["nope.csv"]);
    fails_with(bin().args(["train", "--set", "train.epoch=3"]).output().unwrap(), &["train.epoch"]);
    fails_with(bin().args(["train", "--set", "optim.lr=fast"]).output().unwrap(), &["optim.lr"]);
    fails_with(bin().args(["train", "--recipe", "no-such-recipe"]).output().unwrap(), &["no-such-recipe"]);
    fails_with(bin().args(["train", "--device", "tpu"]).output().unwrap(), &["device", "tpu"]);
    fails_with(bin().args(["eval", "--run"]).arg(d.join("missing-run")).output().unwrap(), &["missing-run"]);
    fails_with(bin().args(["train", "--resume"]).arg(d.join("missing-run")).output().unwrap(), &["missing-run"]);
    fails_with(bin().args(["data", "no-such-dataset"]).output().unwrap(), &["no-such-dataset", "rotten-tomatoes"]);

    // A corrupt model file in a run folder.
    let run = d.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let o = bin().args(["predict", "--run"]).arg(&run).output().unwrap();
    fails_with(o, &["recipe.toml"]);
}

#[test]
fn pretrain_runs_on_a_users_text_and_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("notes.txt");
    let lines: Vec<String> = (0..300).map(|i| format!("note {i}: the harbour lights were {} tonight and the boats stayed in", if i % 2 == 0 { "bright" } else { "dim" })).collect();
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let runs = tmp.path().join("runs");
    let tiny = ["--set", "model.layers=1", "--set", "model.hidden=32", "--set", "model.heads=2", "--set", "model.ffn=64", "--set", "model.max_len=32", "--set", "corpus.max_len=32", "--set", "tokenizer.vocab_size=300", "--set", "train.epochs=1", "--set", "train.eval_every=0", "--device", "cpu", "--quiet"];
    let o = bin().args(["pretrain", "--corpus"]).arg(&corpus).args(tiny).args(["--name", "notes", "--runs-dir"]).arg(&runs).output().unwrap();
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("perplexity") && out.contains("encoder:"), "{out}");
    assert!(runs.join("notes/encoder/config.json").is_file() && runs.join("notes/encoder/tokenizer.json").is_file());

    fails_with(bin().args(["pretrain", "--corpus", "no-such-corpus", "--device", "cpu", "--quiet", "--runs-dir"]).arg(&runs).output().unwrap(), &["no-such-corpus", "wiki100"]);
    fails_with(bin().args(["pretrain", "--set", "mlm.mask_prob=2", "--runs-dir"]).arg(&runs).output().unwrap(), &["mlm.mask_prob"]);
    fails_with(bin().args(["pretrain", "--recipe", "nope"]).output().unwrap(), &["nope", "mlm-imdb"]);
    // A classification run is not a pretraining run to resume.
    let fake = runs.join("not-pretrain");
    std::fs::create_dir_all(&fake).unwrap();
    fails_with(bin().args(["pretrain", "--resume"]).arg(&fake).output().unwrap(), &["not a pretraining run", "pretrain.toml"]);
}
