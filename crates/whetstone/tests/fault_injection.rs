//! Fault injection: a small training run SIGKILLed at many points (a seeded spread over the
//! whole run, and the moment a checkpoint or model file is being written), then `--resume`d.
//! Every resume must end bit-identical to an uninterrupted run; a run killed before its first
//! checkpoint must say so on `--resume`, and a fresh run then works.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{bin, ok};

/// A small learnable CSV (filler words around a sentiment word), seeded.
fn data(dir: &Path) -> PathBuf {
    const POS: &[&str] = &["good", "great", "lovely"];
    const NEG: &[&str] = &["bad", "awful", "dull"];
    const FILLER: &[&str] = &["the", "film", "plot", "was", "really", "and", "a", "cast", "music", "story"];
    let mut rng = Rng(7);
    let mut body = String::from("text,label\n");
    for i in 0..320 {
        let pos = i % 2 == 0;
        let mut words: Vec<&str> = (0..3 + rng.below(5)).map(|_| FILLER[rng.below(FILLER.len())]).collect();
        let at = rng.below(words.len() + 1);
        words.insert(at, if pos { POS[rng.below(3)] } else { NEG[rng.below(3)] });
        body.push_str(&format!("{},{}\n", words.join(" "), if pos { "pos" } else { "neg" }));
    }
    let path = dir.join("data.csv");
    std::fs::write(&path, body).unwrap();
    path
}

/// xorshift64: the kill schedule is fixed by the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The run's name is part of its recipe, so every run is called `fi`, each in its own runs
/// folder. A tiny TextCNN on one thread, a checkpoint every 2 of its 48 steps, an evaluation
/// every 10 (each may write model.safetensors).
fn train(csv: &Path, runs: &Path) -> std::process::Command {
    let mut c = bin();
    c.args(["train", "--data"]).arg(csv).arg("--runs-dir").arg(runs).args(["--name", "fi"]);
    for set in [
        "model.embed_dim=16", "model.channels=8", "tokenizer.vocab_size=200", "train.epochs=3", "train.batch_size=16",
        "train.checkpoint_every=2", "train.eval_every=10", "train.patience=0", "eval.latency_iters=0", "threads=1",
    ] {
        c.args(["--set", set]);
    }
    // The finished runs are compared by their checkpoints too: keep them.
    c.args(["--device", "cpu", "--quiet", "--keep-checkpoint"]);
    c
}

fn resume(dir: &Path) -> Output {
    bin().args(["train", "--quiet", "--keep-checkpoint", "--resume"]).arg(dir).output().unwrap()
}

/// The files a finished run is compared by: the best model's bytes and the final checkpoint's
/// model tensors.
fn assert_same_result(reference: &Path, dir: &Path, what: &str) {
    let a = std::fs::read(reference.join("model.safetensors")).unwrap();
    let b = std::fs::read(dir.join("model.safetensors")).unwrap_or_else(|e| panic!("{what}: no model.safetensors: {e}"));
    assert!(a == b, "{what}: model.safetensors differs from the uninterrupted run");
    let a = whetstone_train::Checkpoint::load(&reference.join("checkpoint.safetensors")).unwrap();
    let b = whetstone_train::Checkpoint::load(&dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(a.progress.step, b.progress.step, "{what}");
    assert_eq!(a.model.len(), b.model.len(), "{what}");
    for ((na, ta), (nb, tb)) in a.model.iter().zip(&b.model) {
        assert_eq!(na, nb, "{what}");
        assert!(ta.equal(tb), "{what}: {na} differs from the uninterrupted run");
    }
    assert!(dir.join("metrics.json").is_file() && dir.join("report.md").is_file(), "{what}: the run's reports are missing");
    let left: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).filter(|n| n.ends_with(".tmp")).collect();
    assert!(left.is_empty(), "{what}: temporary files left in the run folder: {left:?}");
}

/// The temporary file of an atomic write (`.NAME.PID-N.tmp`) of `checkpoint.safetensors` or
/// `model.safetensors` in `dir`, if one is being written.
fn writing(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir).ok()?.flatten().map(|e| e.file_name().to_string_lossy().to_string()).find(|n| {
        n.ends_with(".tmp") && (n.starts_with(".checkpoint.safetensors.") || n.starts_with(".model.safetensors."))
    })
}

/// How a run was cut short.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// After this long.
    After(Duration),
    /// The moment the `n`-th write of a checkpoint or model file is seen in progress.
    Writing(usize),
}

/// Start a run and SIGKILL it as `kill` says; for a kill during a write, the file being
/// written. `None` when the run ended first.
fn start_and_kill(csv: &Path, runs: &Path, kill: Kill) -> Option<String> {
    let mut child = train(csv, runs).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    let dir = runs.join("fi");
    let (mut seen, mut was_writing, mut file) = (0, false, None);
    loop {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "a run took more than 120 s");
        let now = match kill {
            Kill::After(d) => start.elapsed() >= d,
            Kill::Writing(n) => {
                file = writing(&dir);
                if file.is_some() && !was_writing {
                    seen += 1;
                }
                was_writing = file.is_some();
                was_writing && seen >= n
            }
        };
        if now {
            child.kill().unwrap(); // SIGKILL on Unix
            let status = child.wait().unwrap();
            if status.success() {
                return None; // it finished in the meantime
            }
            return Some(file.map_or_else(String::new, |f| format!(" while writing {f}")));
        }
        std::thread::sleep(Duration::from_micros(if matches!(kill, Kill::Writing(_)) { 200 } else { 2000 }));
    }
}

#[test]
fn runs_killed_at_random_points_resume_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = data(tmp.path());
    let reference_runs = tmp.path().join("reference");
    let start = Instant::now();
    ok(&train(&csv, &reference_runs).output().unwrap());
    // The length of a run spreads the kills over it (not asserted on).
    let run_time = start.elapsed();
    let reference = reference_runs.join("fi");
    let steps = whetstone_train::Checkpoint::load(&reference.join("checkpoint.safetensors")).unwrap().progress.step;
    assert_eq!(steps, 48, "256 training rows (80% of 320) in batches of 16, 3 epochs");

    let mut rng = Rng(0x5EED_F00D);
    let (mut killed, mut before_checkpoint, mut resumed, mut attempts) = (0, 0, 0, 0);
    let mut log = Vec::new();
    while killed < 24 {
        attempts += 1;
        assert!(attempts <= 60, "only {killed} of {attempts} runs could be killed before they ended: {log:?}");
        // Every third kill waits for a file write in progress; the others fall anywhere in the
        // run (up to 1.1× its reference length).
        let kill = if attempts % 3 == 0 { Kill::Writing(1 + rng.below(8)) } else { Kill::After(run_time.mul_f64(1.1 * rng.unit())) };
        let runs = tmp.path().join(format!("k{attempts}"));
        let Some(during) = start_and_kill(&csv, &runs, kill) else {
            log.push(format!("{kill:?}: finished first"));
            continue;
        };
        killed += 1;
        let dir = runs.join("fi");
        let what = format!("kill {killed} ({kill:?}{during})");
        let o = resume(&dir);
        if o.status.success() {
            resumed += 1;
            log.push(format!("{kill:?}{during}: resumed"));
            assert_same_result(&reference, &dir, &what);
            continue;
        }
        // No checkpoint yet: the error says so, and a fresh run in the same runs folder works.
        before_checkpoint += 1;
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{what}: resume failed without a clear error: {err}");
        assert!(!dir.join("checkpoint.safetensors").exists(), "{what}: resume failed although there is a checkpoint: {err}");
        if dir.join("recipe.toml").is_file() {
            assert!(
                err.contains("no checkpoint.safetensors to continue from") && err.contains("stopped before its first checkpoint"),
                "{what}: resume of a run killed before its first checkpoint must say so: {err}"
            );
            log.push(format!("{kill:?}{during}: before the first checkpoint"));
        } else {
            // Killed before the run wrote its recipe (before its folder was made, or in the few
            // ms between the folder and recipe.toml): `--resume` says there is no such folder,
            // or that there is no checkpoint yet, naming the folder.
            let clear = if dir.exists() { err.contains("no checkpoint yet") } else { err.contains("no such run folder") };
            assert!(clear && err.contains(&*dir.to_string_lossy()), "{what}: {err}");
            log.push(format!("{kill:?}: before recipe.toml was written (folder made: {})", dir.exists()));
        }
        let o = train(&csv, &runs).output().unwrap();
        ok(&o);
        let fresh = if dir.join("metrics.json").is_file() { dir } else { runs.join("fi-2") };
        assert_same_result(&reference, &fresh, &format!("{what}, then a fresh run"));
    }
    println!("{killed} kills in {attempts} attempts: {resumed} resumed, {before_checkpoint} before the first checkpoint; {:.1}s per run; {log:#?}", run_time.as_secs_f64());
    assert!(resumed >= 8, "too few kills landed after a checkpoint to test resuming: {log:#?}");
}
