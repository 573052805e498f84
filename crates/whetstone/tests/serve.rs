//! `whetstone serve` through the real binary and a real HTTP client (ureq) on loopback: answers
//! equal to `whetstone predict`'s, dynamic batching under concurrent clients, 503 from a full
//! queue, 413 over the limits, 400 naming what is wrong, and SIGTERM answering every request
//! in flight before exiting 0.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;
use common::{bin, ok};

/// One tiny TextCNN run shared by the tests (trained once per test binary).
fn run_dir() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| common::tiny_run("serve", &["data.max_len=64", "eval.latency_iters=0", "threads=1"]))
}

/// A running server, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `serve` on a free port with `args`; waits for its ready line.
fn serve(args: &[&str]) -> Server {
    let mut child = bin().args(["serve", "--run"]).arg(run_dir()).args(["--port", "0"]).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(120)).expect("serve printed no ready line within 120 s");
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no address in {line:?}")).to_string();
    Server { child, url }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build()
}

/// POST `body` to `/predict`: the status and the JSON answer (errors included).
fn post(url: &str, body: &str) -> (u16, Value) {
    let r = match agent().post(&format!("{url}/predict")).set("Content-Type", "application/json").send_string(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST /predict: {e}"),
    };
    let status = r.status();
    let text = r.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn get(url: &str, path: &str) -> Value {
    agent().get(&format!("{url}{path}")).call().unwrap().into_json().unwrap()
}

const TEXTS: [&str; 6] = ["a gripping, beautifully acted film", "dull and far too long", "", "the plot makes no sense at all", "  ", "i loved every minute of it"];

#[test]
fn answers_equal_predict_and_describe_the_run() {
    let s = serve(&[]);
    let mut child = bin().args(["predict", "--format", "jsonl", "--run"]).arg(run_dir()).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(TEXTS.join("\n").as_bytes()).unwrap();
    let expected: Vec<Value> = ok(&child.wait_with_output().unwrap()).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(expected.len(), TEXTS.len());

    let (status, got) = post(&s.url, &json!({ "texts": TEXTS }).to_string());
    assert_eq!(status, 200, "{got}");
    let got = got["predictions"].as_array().unwrap();
    assert_eq!(got.len(), TEXTS.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g["label"], e["label"], "{g} vs {e}");
        match e["probs"].as_object() {
            None => assert!(g["probs"].is_null(), "{g}"),
            Some(probs) => {
                for (label, p) in probs {
                    let d = (g["probs"][label].as_f64().unwrap() - p.as_f64().unwrap()).abs();
                    assert!(d < 1e-5, "{label}: {g} vs {e}");
                }
            }
        }
    }
    // One text: one object, the same answer.
    let (status, one) = post(&s.url, &json!({ "text": TEXTS[0] }).to_string());
    assert_eq!(status, 200);
    assert_eq!(one["label"], expected[0]["label"]);

    let meta = get(&s.url, "/metadata");
    assert_eq!(meta["run"], "tiny");
    assert_eq!(meta["model"], "textcnn");
    assert_eq!(meta["precision"], "fp32");
    assert_eq!(meta["max_len"], 64);
    assert_eq!(meta["recipe_sha256"].as_str().unwrap().len(), 64);
    let labels = meta["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 2);
    assert!(labels.iter().all(|l| got[0]["probs"].get(l.as_str().unwrap()).is_some()), "{meta}");
    assert_eq!(get(&s.url, "/health")["status"], "ok");
}

#[test]
fn bad_requests_are_400_naming_what_is_wrong_and_limits_are_413() {
    let s = serve(&["--max-body-bytes", "2000", "--max-texts", "4", "--max-chars", "300"]);
    for (body, want) in [("{\"text\": ", "not valid JSON"), ("{\"txt\": \"a\"}", "unknown field `txt`"), ("{\"texts\": [\"a\", 3]}", "`texts[1]` must be a string")] {
        let (status, v) = post(&s.url, body);
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    let big = json!({ "text": "x".repeat(5000) }).to_string();
    for (body, want) in [(big, "--max-body-bytes"), (json!({ "texts": vec!["a"; 5] }).to_string(), "--max-texts"), (json!({ "text": "y".repeat(301) }).to_string(), "--max-chars")] {
        let (status, v) = post(&s.url, &body);
        assert_eq!(status, 413, "{v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{v}");
    }
    // Still serving.
    assert_eq!(post(&s.url, "{\"text\": \"fine\"}").0, 200);
}

/// `n` clients posting one text each at once; their statuses.
fn concurrent(url: &str, n: usize) -> Vec<u16> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (url, barrier) = (url.to_string(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                post(&url, &json!({ "text": format!("{} {i}", TEXTS[i % 2]) }).to_string()).0
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn concurrent_requests_share_batches() {
    let s = serve(&["--batch-window-ms", "200", "--max-batch", "32"]);
    let statuses = concurrent(&s.url, 16);
    assert!(statuses.iter().all(|&c| c == 200), "{statuses:?}");
    let stats = &get(&s.url, "/health")["stats"];
    assert_eq!(stats["requests_served"], 16, "{stats}");
    assert!(stats["batches_served"].as_u64().unwrap() < 16, "no batching: {stats}");
    assert!(stats["largest_batch"].as_u64().unwrap() > 1, "{stats}");
}

#[test]
fn a_full_queue_is_503_at_once_and_the_server_survives() {
    let s = serve(&["--max-queue", "1", "--batch-window-ms", "0", "--batch-delay-ms", "1000"]);
    let start = Instant::now();
    let statuses = concurrent(&s.url, 8);
    assert!(statuses.iter().all(|&c| c == 200 || c == 503), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(start.elapsed() < Duration::from_secs(30));
    let stats = &get(&s.url, "/health")["stats"];
    assert_eq!(stats["rejected_queue_full"].as_u64().unwrap(), statuses.iter().filter(|&&c| c == 503).count() as u64, "{stats}");
    assert_eq!(post(&s.url, "{\"text\": \"still here\"}").0, 200);
}

#[test]
fn sigterm_answers_the_requests_in_flight_then_exits_0() {
    let mut s = serve(&["--batch-window-ms", "0", "--batch-delay-ms", "400"]);
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let url = s.url.clone();
            std::thread::spawn(move || post(&url, &json!({ "text": format!("{} {i}", TEXTS[0]) }).to_string()).0)
        })
        .collect();
    // Wait until all four are received (one in the model's hands, three queued).
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&s.url, "/health")["stats"]["requests_received"] != 4 {
        assert!(Instant::now() < deadline, "the requests never queued");
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill = std::process::Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let statuses: Vec<u16> = clients.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(statuses, [200; 4]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "serve did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
