//! Run folders that cannot go wrong, through the real binary: names that would leave the runs
//! folder, values that are not finite, do not fit their types or do not fit in memory, edited
//! recipes and changed data on `--resume`, concurrent runs and a resume of a running run,
//! and non-finite weights. Each bad case exits 1 with a one-line error that names the key,
//! file or problem, never panics or hangs, and a refused fresh run leaves no folder behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::bin;

/// `cmd`'s output, or a failure if it runs longer than `secs` (a hang).
fn run_for(cmd: &mut Command, secs: u64) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for(child, secs)
}

fn wait_for(mut child: Child, secs: u64) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("the command ran for more than {secs} s (a hang?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ok(o: &Output) {
    assert!(o.status.success(), "failed: {}\nstdout: {}\nstderr: {}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

/// Exit status 1, no panic, one line on stderr containing every needle.
fn fails_with(o: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "expected exit code 1 (not success, a panic or a signal): {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert_eq!(err.trim().lines().count(), 1, "expected a one-line error: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`: {err}");
    }
    err
}

/// The folder holds nothing (or does not exist).
fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

fn csv(dir: &Path, name: &str, n: usize) -> PathBuf {
    common::rt_csv(dir, name, n)
}

const TINY: &[&str] = &[
    "--set", "model.embed_dim=16", "--set", "model.channels=8", "--set", "tokenizer.vocab_size=500", "--set", "train.batch_size=32",
    "--set", "eval.latency_iters=2", "--set", "eval.throughput_iters=1", "--set", "threads=1", "--device", "cpu", "--quiet",
];

fn train(csv: &Path, runs: &Path) -> Command {
    let mut c = bin();
    c.args(["train", "--data"]).arg(csv).arg("--runs-dir").arg(runs).args(TINY);
    c
}

#[test]
fn run_names_cannot_leave_the_runs_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = csv(tmp.path(), "rt.csv", 200);
    let runs = tmp.path().join("runs");
    for (name, needle) in [("../x", "path separator"), ("/abs", "absolute path"), ("..", "starts with a dot"), ("a/b", "path separator")] {
        let o = run_for(train(&data, &runs).args(["--name", name]), 120);
        fails_with(&o, &["name", name, needle]);
        let o = run_for(bin().args(["pretrain", "--corpus"]).arg(&data).arg("--runs-dir").arg(&runs).args(["--name", name, "--quiet"]), 120);
        fails_with(&o, &["name", needle]);
        let o = run_for(bin().args(["prune", "--run"]).arg(tmp.path().join("no-run")).arg("--runs-dir").arg(&runs).args(["--name", name, "--quiet"]), 120);
        fails_with(&o, &["name", needle]);
    }
    assert!(empty(&runs), "a refused run left a folder");
    assert!(!tmp.path().join("x").exists() && !Path::new("/abs").exists());
}

#[test]
fn bad_values_are_refused_by_key_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = csv(tmp.path(), "rt.csv", 200);
    let runs = tmp.path().join("runs");
    for (set, needles) in [
        ("optim.weight_decay=nan", &["optim.weight_decay", "finite"][..]),
        ("optim.lr=inf", &["optim.lr"]),
        ("train.label_smoothing=nan", &["train.label_smoothing"]),
        ("threads=4294967296", &["threads", "too large"]),
        ("train.batch_size=4611686018427387904", &["train.batch_size", "too large"]),
        ("train.bucket_factor=4611686018427387904", &["train.bucket_factor", "too large"]),
        ("model.embed_dim=100000000", &["too large", "model.embed_dim", "GiB"]),
    ] {
        let o = run_for(train(&data, &runs).args(["--set", set]), 120);
        fails_with(&o, needles);
    }
    // A huge Transformer is refused by the size of its keys, before any allocation.
    let o = run_for(bin().args(["train", "--recipe", "rt-transformer", "--data"]).arg(&data).arg("--runs-dir").arg(&runs).args(["--set", "model.hidden=1048576", "--set", "model.heads=1", "--device", "cpu", "--quiet"]), 120);
    fails_with(&o, &["too large", "model.hidden = 1048576"]);
    // The same value in a recipe file.
    let recipe = tmp.path().join("nan.toml");
    std::fs::write(&recipe, "name = \"nan\"\n[model]\nkind = \"textcnn\"\n[optim]\nkind = \"adamw\"\nweight_decay = nan\n").unwrap();
    let o = run_for(train(&data, &runs).arg("--recipe").arg(&recipe), 120);
    fails_with(&o, &["nan.toml", "optim.weight_decay"]);
    assert!(empty(&runs), "a refused run left a folder behind");
}

/// A run of `data` stopped (as a kill would) after a few steps, with a checkpoint.
fn stopped_run(data: &Path, runs: &Path, name: &str) -> PathBuf {
    let o = run_for(train(data, runs).args(["--name", name, "--set", "train.epochs=3", "--set", "train.checkpoint_every=2", "--stop-after", "4"]), 300);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("interrupted"), "{}", String::from_utf8_lossy(&o.stdout));
    let dir = runs.join(name);
    assert!(dir.join("checkpoint.safetensors").is_file());
    dir
}

#[test]
fn resume_refuses_an_edited_recipe_or_changed_data_and_never_hangs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = csv(tmp.path(), "rt.csv", 600);
    let runs = tmp.path().join("runs");
    let dir = stopped_run(&data, &runs, "cut");
    let recipe_path = dir.join("recipe.toml");
    let recipe = std::fs::read_to_string(&recipe_path).unwrap();
    assert!(!recipe.contains("stop_after"), "stop_after is a run option, never part of the recipe:\n{recipe}");
    let resume = || run_for(bin().args(["train", "--quiet", "--resume"]).arg(&dir), 300);

    // batch_size edited in the run's recipe.toml: refused, naming the key and both values.
    assert!(recipe.contains("batch_size = 32"), "{recipe}");
    std::fs::write(&recipe_path, recipe.replace("batch_size = 32", "batch_size = 16")).unwrap();
    fails_with(&resume(), &["cannot resume", "train.batch_size: 32 → 16"]);

    // A non-finite value edited in: refused at parse time, naming the file and the key.
    std::fs::write(&recipe_path, recipe.replace("weight_decay = 0.01", "weight_decay = nan")).unwrap();
    fails_with(&resume(), &["recipe.toml", "optim.weight_decay"]);
    std::fs::write(&recipe_path, &recipe).unwrap();

    // The data file changed: refused, saying which split differs.
    let original = std::fs::read_to_string(&data).unwrap();
    let mut lines: Vec<&str> = original.lines().collect();
    lines.swap(1, 2);
    lines.truncate(lines.len() - 1);
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    fails_with(&resume(), &["cannot resume", "data differs", "train"]);
    std::fs::write(&data, &original).unwrap();

    // What may change (here the device) does not stop a resume: the run finishes.
    let o = run_for(bin().args(["train", "--quiet", "--device", "cpu", "--resume"]).arg(&dir), 300);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("test accuracy"));
    assert!(dir.join("metrics.json").is_file());
}

#[test]
fn concurrent_runs_get_their_own_folders_and_a_running_run_cannot_be_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = csv(tmp.path(), "rt.csv", 600);
    let runs = tmp.path().join("runs");
    // Two runs started at once with the same name.
    let spawn = |extra: &[&str]| train(&data, &runs).args(["--name", "same", "--set", "train.epochs=2"]).args(extra).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (a, b) = (spawn(&[]), spawn(&[]));
    let (a, b) = (wait_for(a, 300), wait_for(b, 300));
    ok(&a);
    ok(&b);
    for d in ["same", "same-2"] {
        assert!(runs.join(d).join("model.safetensors").is_file() && runs.join(d).join("metrics.json").is_file(), "{d} is incomplete");
    }
    assert!(!runs.join("same-3").exists());

    // A long run holds its folder: resuming it from another process is refused, at once.
    let long = train(&data, &runs).args(["--name", "long", "--set", "train.epochs=200", "--set", "train.patience=0", "--set", "train.checkpoint_every=2"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let dir = runs.join("long");
    let start = Instant::now();
    while !dir.join("checkpoint.safetensors").exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = run_for(bin().args(["train", "--quiet", "--resume"]).arg(&dir), 60);
    let mut long = long;
    let still_running = long.try_wait().unwrap().is_none();
    long.kill().unwrap();
    let _ = long.wait();
    assert!(still_running, "the long run ended before the resume was tried");
    fails_with(&o, &["in use by another whetstone process", "long"]);
}

#[test]
fn non_finite_weights_are_refused_by_eval_and_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let data = csv(tmp.path(), "rt.csv", 300);
    let runs = tmp.path().join("runs");
    ok(&run_for(train(&data, &runs).args(["--name", "good", "--set", "train.epochs=1"]), 300));
    let dir = runs.join("good");
    let model = dir.join("model.safetensors");
    let mut tensors = tch::Tensor::read_safetensors(&model).unwrap();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let (name, t) = &tensors[0];
    let _ = t.shallow_clone().fill_(f64::NAN);
    tch::Tensor::write_safetensors(&tensors, &model).unwrap();
    let name = name.clone();
    fails_with(&run_for(bin().args(["eval", "--run"]).arg(&dir), 120), &["model.safetensors", &name, "NaN"]);
    fails_with(&run_for(bin().args(["predict", "--run"]).arg(&dir).stdin(Stdio::null()), 120), &["model.safetensors", &name]);
}
