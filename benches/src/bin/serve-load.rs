//! `serve-load`: `whetstone serve` under load over loopback, against plain `whetstone predict`.
//!
//! It starts the real binary (`serve --port 0`) on a run (default: `runs/serve-bench`, the
//! default recipe's TextCNN trained for 1 epoch on rotten-tomatoes, trained here when missing),
//! and drives it with 1, 8 and 64 closed-loop clients (each sends one rotten-tomatoes test
//! sentence per request, waits for the answer, sends the next) for `--seconds` each, once with
//! the default batching window and once with window 0 (one request per forward pass). It
//! reports p50/p99 latency, throughput and the mean batch size, then overloads a server with a
//! short queue (`--max-queue 4`, 64 clients) and counts 503s; and it times `whetstone predict`
//! (one line per forward pass) on the same sentences. Writes `serve.md` and `serve.json` to
//! `--out`.

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use whetstone_benches::machine::{cpu_model, load_avg};
use whetstone_data::{load_splits, DataSource};

#[derive(Parser, Debug)]
#[command(about = "Load test of `whetstone serve` over loopback against `whetstone predict`")]
struct Args {
    /// The whetstone binary.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/whetstone"))]
    whetstone: PathBuf,
    /// The run to serve (trained with the default recipe for 1 epoch when missing).
    #[arg(long, default_value = "runs/serve-bench")]
    run: PathBuf,
    /// Folder for serve.md and serve.json.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// Concurrent clients, comma-separated.
    #[arg(long, default_value = "1,8,64", value_delimiter = ',')]
    clients: Vec<usize>,
    /// The default batching window (ms) measured against window 0.
    #[arg(long, default_value_t = 5)]
    window_ms: u64,
    /// Intra-op threads of the model, in serve and predict alike.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Sentences `predict` classifies.
    #[arg(long, default_value_t = 1000)]
    predict_lines: usize,
    /// 2 s per measurement, for a smoke run.
    #[arg(long)]
    quick: bool,
}

/// One load measurement.
#[derive(Debug)]
struct Point {
    clients: usize,
    ok: usize,
    rejected: usize,
    failed: usize,
    seconds: f64,
    /// Latencies of the answered requests, milliseconds, sorted.
    latencies: Vec<f64>,
    mean_batch: f64,
}

impl Point {
    fn throughput(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
    fn pct(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies[((self.latencies.len() - 1) as f64 * q).round() as usize]
    }
    fn to_json(&self) -> Value {
        json!({"clients": self.clients, "ok": self.ok, "rejected_503": self.rejected, "failed": self.failed, "seconds": self.seconds,
            "throughput_rps": self.throughput(), "p50_ms": self.pct(0.5), "p99_ms": self.pct(0.99), "mean_batch_size": self.mean_batch})
    }
}

/// A running server, stopped with SIGTERM when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(a: &Args, extra: &[String]) -> Result<Server> {
        let mut child = Command::new(&a.whetstone)
            .args(["serve", "--port", "0", "--threads", &a.threads.to_string(), "--run"])
            .arg(&a.run)
            .args(extra)
            .env("OMP_NUM_THREADS", a.threads.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", a.whetstone.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("serve's stdout")?).read_line(&mut line)?;
        let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) else {
            let _ = child.kill();
            bail!("serve printed no address: {line:?}");
        };
        Ok(Server { url: url.to_string(), child })
    }

    fn stats(&self) -> Result<Value> {
        let v: Value = ureq::get(&format!("{}/health", self.url)).call()?.into_json()?;
        Ok(v["stats"].clone())
    }

    /// SIGTERM, then the exit status (graceful shutdown).
    fn stop(mut self) -> Result<bool> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        Ok(self.child.wait()?.success())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `clients` closed-loop clients for `seconds`.
fn load(server: &Server, texts: &Arc<Vec<String>>, clients: usize, seconds: f64) -> Result<Point> {
    let before = server.stats()?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (url, texts) = (format!("{}/predict", server.url), texts.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
                let (mut lat, mut rejected, mut failed) = (Vec::new(), 0, 0);
                let mut k = c * 7919;
                while Instant::now() < deadline {
                    let body = json!({ "text": texts[k % texts.len()] }).to_string();
                    k += 1;
                    let t = Instant::now();
                    match agent.post(&url).set("Content-Type", "application/json").send_string(&body) {
                        Ok(r) => {
                            let _ = r.into_string();
                            lat.push(t.elapsed().as_secs_f64() * 1e3);
                        }
                        Err(ureq::Error::Status(503, r)) => {
                            let _ = r.into_string();
                            rejected += 1;
                            // A client told to retry later backs off briefly.
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(_) => failed += 1,
                    }
                }
                (lat, rejected, failed)
            })
        })
        .collect();
    let mut p = Point { clients, ok: 0, rejected: 0, failed: 0, seconds: 0.0, latencies: Vec::new(), mean_batch: 0.0 };
    for h in handles {
        let (lat, r, f) = h.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
        p.latencies.extend(lat);
        p.rejected += r;
        p.failed += f;
    }
    p.seconds = start.elapsed().as_secs_f64();
    p.ok = p.latencies.len();
    p.latencies.sort_by(f64::total_cmp);
    let after = server.stats()?;
    let d = |k: &str| after[k].as_f64().unwrap_or(0.0) - before[k].as_f64().unwrap_or(0.0);
    p.mean_batch = if d("batches_served") > 0.0 { d("texts_served") / d("batches_served") } else { 0.0 };
    eprintln!("  {clients:>3} clients: {:>7.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  mean batch {:>5.1}  503s {}  errors {}", p.throughput(), p.pct(0.5), p.pct(0.99), p.mean_batch, p.rejected, p.failed);
    Ok(p)
}

/// `whetstone predict` on `n` sentences: lines per second between its first and last answer
/// (the model's loading left out).
fn predict_rate(a: &Args, texts: &[String], n: usize) -> Result<f64> {
    let mut child = Command::new(&a.whetstone)
        .args(["predict", "--run"])
        .arg(&a.run)
        .env("OMP_NUM_THREADS", a.threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let input: String = (0..n).map(|i| format!("{}\n", texts[i % texts.len()].replace(['\n', '\r'], " "))).collect();
    let mut stdin = child.stdin.take().context("predict's stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut first = None;
    let mut lines = 0;
    for line in BufReader::new(child.stdout.take().context("predict's stdout")?).lines() {
        line?;
        lines += 1;
        first.get_or_insert_with(Instant::now);
    }
    let last = Instant::now();
    writer.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    ensure!(child.wait()?.success() && lines == n, "predict answered {lines} of {n} lines");
    Ok((n - 1) as f64 / (last - first.context("no answer")?).as_secs_f64())
}

fn ensure_run(a: &Args) -> Result<()> {
    if a.run.join("model.safetensors").is_file() {
        return Ok(());
    }
    let (Some(dir), Some(name)) = (a.run.parent(), a.run.file_name()) else { bail!("--run {}: not a run folder path", a.run.display()) };
    eprintln!("training {} (default recipe, 1 epoch)", a.run.display());
    let ok = Command::new(&a.whetstone)
        .args(["train", "--set", "train.epochs=1", "--set", "eval.latency_iters=0", "--quiet", "--runs-dir"])
        .arg(dir)
        .arg("--name")
        .arg(name)
        .status()?
        .success();
    ensure!(ok && a.run.join("model.safetensors").is_file(), "training {} failed", a.run.display());
    Ok(())
}

fn main() -> Result<()> {
    let mut a = Args::parse();
    if a.quick {
        a.seconds = 2.0;
        a.predict_lines = 300;
    }
    ensure!(a.whetstone.is_file(), "--whetstone {}: no such binary (cargo build --release -p whetstone)", a.whetstone.display());
    ensure_run(&a)?;
    let splits = load_splits(&DataSource::Named { name: "rotten-tomatoes".into() }, 0.1, 0.1, 42)?;
    let texts = Arc::new(splits.test.texts.clone());

    eprintln!("whetstone predict ({} lines, one per forward pass)", a.predict_lines);
    let predict = predict_rate(&a, &texts, a.predict_lines)?;
    eprintln!("  {predict:.1} lines/s");

    let mut rows = Vec::new();
    for window in [a.window_ms, 0] {
        eprintln!("serve --batch-window-ms {window}");
        let server = Server::start(&a, &["--batch-window-ms".into(), window.to_string()])?;
        load(&server, &texts, 1, 0.5)?; // warm-up
        for &c in &a.clients {
            rows.push((window, load(&server, &texts, c, a.seconds)?));
        }
        ensure!(server.stop()?, "serve did not exit 0 on SIGTERM");
    }
    eprintln!("overload: serve --max-queue 4, 64 clients");
    let server = Server::start(&a, &["--max-queue".into(), "4".into()])?;
    let over = load(&server, &texts, 64, a.seconds)?;
    let healthy = ureq::get(&format!("{}/health", server.url)).call().map(|r| r.status() == 200).unwrap_or(false);
    let clean_exit = server.stop()?;

    let at = |w: u64, c: usize| rows.iter().find(|(rw, p)| *rw == w && p.clients == c).map(|(_, p)| p.throughput());
    let top = *a.clients.iter().max().unwrap_or(&64);
    let (batched, single) = (at(a.window_ms, top).unwrap_or(f64::NAN), at(0, top).unwrap_or(f64::NAN));
    let run_meta: Value = std::fs::read_to_string(a.run.join("recipe.toml")).ok().map(|t| json!(t.lines().next().unwrap_or(""))).unwrap_or(Value::Null);

    let json = json!({
        "machine": {"cpu": cpu_model(), "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "load_avg_at_end": load_avg()},
        "run": a.run.display().to_string(), "recipe_first_line": run_meta, "threads": a.threads, "seconds_per_point": a.seconds,
        "predict_lines_per_s": predict,
        "serve": rows.iter().map(|(w, p)| { let mut v = p.to_json(); v["window_ms"] = json!(w); v }).collect::<Vec<_>>(),
        "overload": {"max_queue": 4, "point": over.to_json(), "healthy_after": healthy, "exit_0_on_sigterm": clean_exit},
        "goal": {"clients": top, "batched_rps": batched, "batch1_rps": single, "batching_wins": batched > single,
                 "overload_gets_503_not_crash": over.rejected > 0 && over.failed == 0 && healthy && clean_exit},
    });
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(a.out.join("serve.json"), serde_json::to_string_pretty(&json)? + "\n")?;

    let mut md = String::new();
    md += "# `whetstone serve` under load\n\n";
    md += "Produced by `cargo xtask bench serve` (benches/src/bin/serve-load.rs): the real binary on loopback, closed-loop \
clients (each sends one rotten-tomatoes test sentence as `{\"text\": …}`, waits for the answer, sends the next), ";
    md += &format!("{} s per row, model intra-op threads {} (serve `--threads`, and `OMP_NUM_THREADS` for serve and predict).\n\n", a.seconds, a.threads);
    md += &format!("Run: `{}`, the default recipe's TextCNN trained for 1 epoch (`whetstone train --set train.epochs=1`).  \n", a.run.display());
    md += &format!("Machine: {} ({} cores, shared with other builds; load average at the end {}).\n\n", cpu_model(), std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), load_avg());
    md += "| batching window | clients | answered | throughput (req/s) | p50 (ms) | p99 (ms) | mean batch | 503 | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (w, p) in &rows {
        let label = if *w == 0 { "0 (batch-1)".to_string() } else { format!("{w} ms (default)") };
        md += &format!("| {label} | {} | {} | {:.1} | {:.2} | {:.2} | {:.1} | {} | {} |\n", p.clients, p.ok, p.throughput(), p.pct(0.5), p.pct(0.99), p.mean_batch, p.rejected, p.failed);
    }
    md += &format!("\n`whetstone predict` on {} of the same sentences (stdin, one line per forward pass, loading left out): **{predict:.1} lines/s**.\n\n", a.predict_lines);
    md += "## Goals\n\n";
    md += &format!(
        "- Dynamic batching against batch-1 serving at {top} clients: {batched:.1} against {single:.1} req/s ({:.2}x): {}.\n",
        batched / single,
        if batched > single { "met" } else { "**not met**" }
    );
    md += &format!(
        "- Overload (`--max-queue 4`, 64 clients, {} s): {} answered, {} answered 503 at once, {} other errors; `/health` afterwards: {}; exit status 0 on SIGTERM: {}. {}\n",
        a.seconds,
        over.ok,
        over.rejected,
        over.failed,
        if healthy { "200" } else { "failed" },
        clean_exit,
        if over.rejected > 0 && over.failed == 0 && healthy && clean_exit { "Overload gets 503, not a crash: met." } else { "**Not met.**" }
    );
    let p50 = |w: u64, c: usize| rows.iter().find(|(rw, p)| *rw == w && p.clients == c).map_or(f64::NAN, |(_, p)| p.pct(0.5));
    let low = *a.clients.iter().min().unwrap_or(&1);
    md += &format!(
        "- The window's price: a request that finds no company waits the whole window. At {low} client(s) p50 is {:.2} ms with the {} ms window against {:.2} ms without it; at {top} clients the window's batches cut p50 from {:.2} to {:.2} ms.\n",
        p50(a.window_ms, low),
        a.window_ms,
        p50(0, low),
        p50(0, top),
        p50(a.window_ms, top)
    );
    md += &format!("- `predict` answers one line per forward pass with no HTTP in between ({predict:.1} lines/s): batch-1 serving over HTTP is bounded by it; batched serving at {top} clients passes it ({:.2}x).\n", batched / predict);
    std::fs::write(a.out.join("serve.md"), &md)?;
    print!("{md}");
    Ok(())
}
