//! `whetstone predict` through the real binary: one answer per stdin line, empty lines
//! included, in order and flushed per line (driven interactively through a pipe), a 10 MB line
//! answered from its bounded prefix, `--format jsonl` with every class's probability, and
//! non-finite probabilities refused with an error instead of a printed `NaN`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;
use common::{bin, ok};

/// The run's `max_len` (the default recipe's) and the characters of a line predict reads.
const MAX_LEN: usize = 64;
const BOUND: usize = MAX_LEN * 32;

/// One tiny TextCNN run shared by the tests (trained once per test binary).
fn run_dir() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| common::tiny_run("predict_cli", &[&format!("data.max_len={MAX_LEN}"), "eval.latency_iters=2", "eval.throughput_iters=1"]))
}

/// `child`'s output, or a failure if it runs longer than `secs` (a hang).
fn wait_for(mut child: Child, secs: u64) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("predict ran for more than {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `predict` on `input` with `args`, stdin written from a thread (a 10 MB input would fill the pipe).
fn predict(run: &Path, args: &[&str], input: Vec<u8>) -> Output {
    let mut child = bin().args(["predict", "--run"]).arg(run).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = wait_for(child, 180);
    writer.join().unwrap();
    o
}

/// Asserts `line` is `label<TAB>probability` with a probability in [0, 1]; the label.
fn plain_answer(line: &str) -> String {
    let (label, p) = line.split_once('\t').unwrap_or_else(|| panic!("not label<TAB>probability: {line:?}"));
    let p: f64 = p.parse().unwrap_or_else(|_| panic!("not a probability: {line:?}"));
    assert!((0.0..=1.0).contains(&p), "{line}");
    assert!(!label.is_empty(), "{line}");
    label.to_string()
}

#[test]
fn answers_each_line_through_a_pipe_before_stdin_closes() {
    let mut child = bin().args(["predict", "--run"]).arg(run_dir()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let timeout = Duration::from_secs(120);
    stdin.write_all(b"a gorgeous, moving film\n").unwrap();
    stdin.flush().unwrap();
    let first = rx.recv_timeout(timeout).expect("no answer to the first line while stdin is still open");
    plain_answer(&first);
    // An empty line is answered too (with an empty line), in turn.
    stdin.write_all(b"\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(rx.recv_timeout(timeout).expect("no answer to the empty line"), "");
    stdin.write_all(b"boring and far too long\n").unwrap();
    stdin.flush().unwrap();
    plain_answer(&rx.recv_timeout(timeout).expect("no answer to the third line"));
    drop(stdin);
    let o = wait_for(child, 60);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(rx.recv_timeout(Duration::from_secs(5)).is_err(), "an answer with no line");
}

#[test]
fn every_line_gets_an_answer_in_order_empty_ones_included() {
    let input = b"a gorgeous, moving film\n\nboring and far too long\n   \n\t\nthe last line has no newline".to_vec();
    let o = predict(run_dir(), &[], input);
    let out = ok(&o);
    let lines: Vec<&str> = out.split('\n').collect();
    assert_eq!(lines.len(), 7, "{out:?}"); // six answers, each ending in \n
    assert_eq!(lines[6], "");
    for i in [0, 2, 5] {
        plain_answer(lines[i]);
    }
    for i in [1, 3, 4] {
        assert_eq!(lines[i], "", "line {}: {out:?}", i + 1);
    }
    // The same texts alone give the same answers: each line is answered on its own.
    let alone = ok(&predict(run_dir(), &[], b"boring and far too long\n".to_vec()));
    assert_eq!(alone.trim_end(), lines[2]);
}

#[test]
fn a_ten_megabyte_line_is_answered_from_its_first_chars() {
    let sentence = "an uneven but often funny and charming comedy about friendship ";
    let huge: String = sentence.repeat((10 << 20) / sentence.len() + 1);
    let prefix: String = huge.chars().take(BOUND).collect();
    let mut input = b"a gorgeous, moving film\n".to_vec();
    input.extend_from_slice(huge.as_bytes());
    input.extend_from_slice(b"\nboring and far too long\n");
    let o = predict(run_dir(), &[], input);
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    lines.iter().for_each(|l| {
        plain_answer(l);
    });
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("stdin line 2 is longer than 2048 characters"), "{stderr}");
    // The long line's answer is that of its first max_len × 32 characters.
    let alone = ok(&predict(run_dir(), &[], format!("{prefix}\n").into_bytes()));
    assert_eq!(alone.trim_end(), lines[1]);
    // jsonl marks it.
    let mut input = huge.into_bytes();
    input.push(b'\n');
    let o = predict(run_dir(), &["--format", "jsonl"], input);
    let v: serde_json::Value = serde_json::from_str(ok(&o).trim_end()).unwrap();
    assert_eq!(v["truncated"], true);
    assert_eq!(v["line"], 1);
}

#[test]
fn jsonl_gives_every_class_probability_and_the_line_number() {
    let o = predict(run_dir(), &["--format", "jsonl"], b"a gorgeous, moving film\n\nboring and far too long\n".to_vec());
    let out = ok(&o);
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    assert_eq!(rows.len(), 3, "{out}");
    let plain = ok(&predict(run_dir(), &[], b"a gorgeous, moving film\n\nboring and far too long\n".to_vec()));
    let plain: Vec<&str> = plain.lines().collect();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["line"], i + 1, "{r}");
        assert!(r.get("truncated").is_none(), "{r}");
    }
    for i in [0, 2] {
        let r = &rows[i];
        let probs = r["probs"].as_object().unwrap();
        assert_eq!(probs.len(), 2, "{r}");
        let sum: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{r}");
        let label = r["label"].as_str().unwrap();
        let best = probs.iter().max_by(|a, b| a.1.as_f64().partial_cmp(&b.1.as_f64()).unwrap()).unwrap();
        assert_eq!(best.0, label, "{r}");
        assert_eq!(r["prob"], *best.1);
        // The plain format prints the same label and probability.
        assert_eq!(plain[i], format!("{label}\t{:.4}", r["prob"].as_f64().unwrap()));
    }
    assert!(rows[1]["label"].is_null() && rows[1]["probs"].is_null(), "{}", rows[1]);
    assert!(String::from_utf8_lossy(&bin().args(["predict", "--help"]).output().unwrap().stdout).contains("Empty lines"));
}

#[test]
fn non_finite_probabilities_are_an_error_not_nan() {
    // Finite weights so large that the logits overflow: load accepts them, softmax gives NaN.
    let dir = run_dir().parent().unwrap().join("overflow");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(run_dir()).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    let model = dir.join("model.safetensors");
    let tensors = tch::Tensor::read_safetensors(&model).unwrap();
    for (_, t) in &tensors {
        let _ = t.shallow_clone().fill_(1e30);
    }
    tch::Tensor::write_safetensors(&tensors, &model).unwrap();
    for format in ["plain", "jsonl"] {
        let o = predict(&dir, &["--format", format], b"\na gorgeous, moving film\nnever reached\n".to_vec());
        let err = String::from_utf8_lossy(&o.stderr);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(1), "{format}: {err}");
        assert!(err.contains("stdin line 2") && err.contains("not finite"), "{err}");
        assert!(!out.to_lowercase().contains("nan"), "{out}");
        // The empty first line was answered before the error.
        assert_eq!(out.lines().count(), 1, "{out:?}");
    }
}
