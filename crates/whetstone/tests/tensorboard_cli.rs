//! A real training run's TensorBoard event file, read back with the `tensorboard` Python
//! package's own reader (`EventAccumulator`, what `tensorboard --logdir` builds on): every
//! scalar of `metrics.jsonl` is there at its step (train loss, learning rate, throughput,
//! gradient norm, every validation metric), also after a run stopped past its checkpoint was
//! resumed (the steps after the checkpoint are not doubled).
//!
//! Needs `tensorboard` in `$WHETSTONE_PYTHON` (the setup installs it; `cargo xtask test` sets
//! the variable); without it the test fails saying so.

use std::collections::BTreeMap;
use std::path::Path;

mod common;
use common::{bin, ok, rt_csv};

const READER: &str = r#"
import json, sys
try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
except ImportError as e:
    print(f"TENSORBOARD MISSING: {e}", file=sys.stderr)
    sys.exit(3)
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print(json.dumps({tag: [[s.step, s.value] for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}))
"#;

/// The scalars TensorBoard's reader finds in the run folder `run`: tag → [(step, value)].
fn tensorboard_scalars(run: &Path) -> BTreeMap<String, Vec<(i64, f64)>> {
    let py = std::env::var("WHETSTONE_PYTHON").unwrap_or_else(|_| "python3".into());
    let o = std::process::Command::new(&py)
        .args(["-c", READER])
        .arg(run)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{py}` ({e}): set WHETSTONE_PYTHON to the setup's Python (`eval \"$(cargo xtask env)\"`), which has tensorboard"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() != Some(3),
        "the `tensorboard` package is not installed in `{py}` ({}); run `cargo xtask env` (it installs the extras) or `{py} -m pip install tensorboard==2.20.0`",
        err.trim()
    );
    assert!(o.status.success(), "tensorboard's reader failed on {}: {err}", run.display());
    let raw: BTreeMap<String, Vec<(i64, f64)>> = serde_json::from_slice(&o.stdout).unwrap();
    raw
}

/// What `metrics.jsonl` says TensorBoard should show: `split/field` → [(step, value)].
fn logged_scalars(run: &Path) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for line in std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let (Some(split), Some(step)) = (r["split"].as_str(), r["step"].as_i64()) else { continue };
        for (k, v) in r.as_object().unwrap() {
            if let (false, Some(x)) = (["split", "step", "epoch"].contains(&k.as_str()), v.as_f64()) {
                out.entry(format!("{split}/{k}")).or_default().push((step, x));
            }
        }
    }
    out
}

fn train(csv: &Path, runs: &Path, name: &str) -> std::process::Command {
    let mut c = bin();
    c.args(["train", "--data"]).arg(csv).args(["--name", name, "--runs-dir"]).arg(runs);
    c.args(["--set", "model.embed_dim=16", "--set", "model.channels=8", "--set", "tokenizer.vocab_size=1000", "--set", "train.epochs=3"]);
    c.args(["--set", "train.log_every=2", "--set", "train.clip_norm=1.0", "--set", "eval.latency_iters=0", "--set", "threads=1", "--device", "cpu", "--quiet"]);
    c
}

fn assert_same(run: &Path) {
    let tb = tensorboard_scalars(run);
    let log = logged_scalars(run);
    for tag in ["train/loss", "train/lr", "train/seq_per_s", "valid/accuracy", "valid/loss", "valid/macro_f1", "valid/mcc"] {
        assert!(tb.contains_key(tag), "{}: TensorBoard has no `{tag}`; it has {:?}", run.display(), tb.keys().collect::<Vec<_>>());
    }
    assert_eq!(tb.keys().collect::<Vec<_>>(), log.keys().collect::<Vec<_>>(), "{}: tags", run.display());
    for (tag, want) in &log {
        let got = &tb[tag];
        assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), want.iter().map(|p| p.0).collect::<Vec<_>>(), "{}: steps of {tag}", run.display());
        for ((step, g), (_, w)) in got.iter().zip(want) {
            // Stored as float32.
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1e-30) + f64::from(f32::MIN_POSITIVE), "{}: {tag} at step {step}: {g} vs {w}", run.display());
        }
    }
}

#[test]
fn tensorboard_reads_every_logged_scalar_of_a_run_and_of_a_resumed_one() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = rt_csv(tmp.path(), "rt.csv", 200);
    let runs = tmp.path().join("runs");

    ok(&train(&csv, &runs, "whole").output().unwrap());
    let whole = runs.join("whole");
    let files: Vec<String> = std::fs::read_dir(&whole).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).filter(|f| f.starts_with("events.out.tfevents.")).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".whetstone"), "{files:?}");
    assert_same(&whole);
    let tb = tensorboard_scalars(&whole);
    assert!(tb.contains_key("train/grad_norm"), "clipping logs the gradient norm: {:?}", tb.keys().collect::<Vec<_>>());
    // Validated at each epoch's end.
    let valid_steps: Vec<i64> = tb["valid/accuracy"].iter().map(|p| p.0).collect();
    let per_epoch = valid_steps[0];
    assert!(per_epoch >= 4 && valid_steps == [per_epoch, 2 * per_epoch, 3 * per_epoch], "{valid_steps:?}");

    // Stopped 3 steps into the second epoch (logged past its checkpoint at the first epoch's
    // end), then resumed: the curves are those of the uninterrupted run, each step once.
    let stop = per_epoch + 3;
    let out = ok(&train(&csv, &runs, "cut").args(["--stop-after", &stop.to_string()]).output().unwrap());
    assert!(out.contains("interrupted"), "{out}");
    assert!(tensorboard_scalars(&runs.join("cut"))["train/loss"].iter().any(|p| p.0 > per_epoch), "logged past the checkpoint before the stop");
    ok(&bin().args(["train", "--resume"]).arg(runs.join("cut")).arg("--quiet").output().unwrap());
    let cut = runs.join("cut");
    assert_same(&cut);
    let steps = |run: &Path, tag: &str| tensorboard_scalars(run)[tag].iter().map(|p| p.0).collect::<Vec<_>>();
    for tag in ["train/loss", "train/lr", "valid/accuracy"] {
        assert_eq!(steps(&cut, tag), steps(&whole, tag), "{tag}: steps of the resumed run");
    }
    // Bit-identical training on CPU: the same losses.
    let (a, b) = (&tensorboard_scalars(&cut)["train/loss"], &tensorboard_scalars(&whole)["train/loss"]);
    assert_eq!(a.iter().map(|p| p.1).collect::<Vec<_>>(), b.iter().map(|p| p.1).collect::<Vec<_>>());
}
