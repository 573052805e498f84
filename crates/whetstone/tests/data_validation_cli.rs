//! `whetstone train` on wrong data: every case exits 1 before training with one line that names
//! the file (and line, column or key) and what to do; dropping bad labels trains and reports it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{bin, ok};

const TINY: &[&str] = &[
    "--set", "model.embed_dim=16", "--set", "model.channels=8", "--set", "tokenizer.vocab_size=300",
    "--set", "train.epochs=1", "--set", "train.batch_size=16", "--set", "eval.latency_iters=0",
    "--device", "cpu", "--quiet",
];

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `n` rows per class of several-word texts.
fn rows(classes: &[&str], n: usize) -> String {
    let mut s = String::from("text,label\n");
    for i in 0..n {
        for c in classes {
            s.push_str(&format!("a {c} review with words number {i},{c}\n"));
        }
    }
    s
}

/// Exit code 1, no panic, no run folder, and stderr is one `error:` line containing `needles`.
fn refused(o: Output, runs: &Path, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "expected exit 1: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "expected one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`: {err}");
    }
    assert!(!runs.exists() || std::fs::read_dir(runs).unwrap().next().is_none(), "a run folder was left behind: {err}");
    err
}

#[test]
fn bad_data_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let runs = d.join("runs");
    let train = |file: &Path, extra: &[&str]| bin().args(["train", "--runs-dir"]).arg(&runs).arg("--data").arg(file).args(TINY).args(extra).output().unwrap();

    let f = write(d, "dup.csv", b"id,text,label,text\n1,good film,pos,x\n2,bad film,neg,y\n");
    refused(train(&f, &[]), &runs, &["dup.csv:1:", "column name `text` appears twice", "fields 2 and 4"]);

    let f = write(d, "ok.csv", rows(&["pos", "neg"], 20).as_bytes());
    refused(train(&f, &["--text-col", "label", "--label-col", "label"]), &runs, &["ok.csv", "both read from column `label`", "--text-col"]);

    let f = write(d, "one.csv", rows(&["pos"], 20).as_bytes());
    refused(train(&f, &[]), &runs, &["one.csv", "only one class, `pos` (20 examples)", "--label-col"]);

    let mut body = rows(&["0", "1"], 20);
    body.push_str("no label here,NaN\n");
    let f = write(d, "nan.csv", body.as_bytes());
    refused(train(&f, &[]), &runs, &["nan.csv:42: column `label`", "`NaN` is a missing-value marker", "--drop-bad-labels"]);

    let f = write(d, "mixed.jsonl", b"{\"text\":\"a b c\",\"label\":1}\n{\"text\":\"d e f\",\"label\":\"pos\"}\n");
    refused(train(&f, &[]), &runs, &["mixed.jsonl", "`1` (line 1)", "`pos` (line 2)"]);

    let f = write(d, "four.csv", b"text,label\na,1\nb,0\nc,1\nd,0\n");
    refused(train(&f, &[]), &runs, &["four.csv", "has 2 example(s), too few to appear in train, valid and test", "--valid FILE"]);

    refused(train(&write(d, "ok2.csv", rows(&["pos", "neg"], 20).as_bytes()), &["--set", "data.test_fraction=0"]), &runs, &["the test split is empty", "--set data.test_fraction=0.1", "--test FILE"]);

    let f = write(d, "quote.csv", b"text,label\n\"good film,pos\nbad,neg\n");
    refused(train(&f, &[]), &runs, &["quote.csv:2: unterminated quote", "column 1"]);

    for name in ["folder.csv", "folder"] {
        std::fs::create_dir(d.join(name)).unwrap();
        refused(train(&d.join(name), &[]), &runs, &[name, "is a directory, not a data file"]);
    }

    let err = refused(train(&d.join("absent.csv"), &[]), &runs, &["absent.csv"]);
    assert_eq!(err.matches("os error").count(), 1, "{err}");

    let f = write(d, "latin1.csv", b"text,label\ncaf\xE9 au lait,1\n");
    refused(train(&f, &[]), &runs, &["latin1.csv:2", "Latin-1", "iconv -f LATIN1 -t UTF-8"]);
}

#[test]
fn dropped_labels_imbalance_and_the_data_section_reach_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let runs = d.join("runs");
    let mut body = rows(&["ham"], 200);
    body.push_str(&rows(&["spam"], 12)[11..]);
    body.push_str("unlabelled one,N/A\nunlabelled two,null\n");
    let f = write(d, "sms.csv", body.as_bytes());
    let run = |extra: &[&str]| bin().args(["train", "--runs-dir"]).arg(&runs).arg("--data").arg(&f).args(TINY).args(extra).output().unwrap();
    refused(run(&[]), &runs, &["sms.csv:214: column `label`", "`N/A`"]);

    let o = run(&["--drop-bad-labels", "--name", "dropped"]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("warning: ") && err.contains("dropped 2 row(s)"), "{err}");
    assert!(err.contains("extreme class imbalance in train: `ham`"), "{err}");
    let report = std::fs::read_to_string(runs.join("dropped/report.md")).unwrap();
    for needle in ["## Data", "| ham | 160 (", "| spam | ", "| **total** |", "at max_len", "within train", "dropped 2 row(s)", "majority-class baseline (accuracy)"] {
        assert!(report.contains(needle), "report.md lacks {needle:?}:\n{report}");
    }
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(runs.join("dropped/metrics.json")).unwrap()).unwrap();
    let baseline = metrics["train"]["test_majority_baseline"].as_f64().unwrap();
    assert!((baseline - 20.0 / 21.0).abs() < 1e-9, "{baseline}");
    assert_eq!(metrics["data"]["splits"][0]["n"], 170);

    // The policy is saved with the run: `eval` rebuilds the same test split without the flag.
    let recipe = std::fs::read_to_string(runs.join("dropped/recipe.toml")).unwrap();
    assert!(recipe.contains("drop_bad_labels = true"), "{recipe}");
    let o = bin().args(["eval", "--run"]).arg(runs.join("dropped")).output().unwrap();
    ok(&o);
}

/// Damaged weights: a truncated file and a directory in place of `model.safetensors` are one
/// `error:` line each, naming the file, with an OS error printed once.
#[test]
fn damaged_weights_are_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let runs = d.join("runs");
    let f = write(d, "ok.csv", rows(&["pos", "neg"], 20).as_bytes());
    ok(&bin().args(["train", "--runs-dir"]).arg(&runs).arg("--data").arg(&f).args(TINY).args(["--name", "r"]).output().unwrap());
    let model = runs.join("r/model.safetensors");
    let eval = || bin().args(["eval", "--run"]).arg(runs.join("r")).output().unwrap();
    let one_line = |o: Output, needles: &[&str]| {
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        for n in needles {
            assert!(err.contains(n), "stderr lacks `{n}`: {err}");
        }
        err
    };
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    one_line(eval(), &["error: checkpoint", "model.safetensors", "not a readable safetensors file"]);
    std::fs::remove_file(&model).unwrap();
    std::fs::create_dir(&model).unwrap();
    let err = one_line(eval(), &["model.safetensors", "os error 21"]);
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}
