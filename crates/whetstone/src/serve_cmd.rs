//! `whetstone serve`: an HTTP JSON server over a run folder (see whetstone-serve).

use anyhow::Result;
use clap::Args;
use std::io::Write;
use std::time::Duration;
use whetstone_serve::options::{DEFAULT_BATCH_WINDOW_MS, DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CHARS, DEFAULT_MAX_QUEUE, DEFAULT_MAX_TEXTS};
use whetstone_serve::{Batching, Limits, ServeOptions};

#[derive(Args)]
#[command(after_long_help = "\
API:
  POST /predict  {\"text\": \"...\"} -> {\"label\": L, \"prob\": P, \"probs\": {label: p, ...}}
                 {\"texts\": [\"...\", ...]} -> {\"predictions\": [{...}, ...]}
                 (an empty text gets a null label; a text over max_len x 32 characters is
                 read from its start and marked \"truncated\": true)
  GET /health    {\"status\": \"ok\", \"stats\": {batches_served, mean_batch_size, ...}}
  GET /metadata  run, recipe_sha256, model, precision, labels, max_len, batching, limits, stats
Errors are {\"error\": \"...\"}: 400 for a malformed request, 413 over a limit, 503 when the \
queue is full (retry later).

Once listening, one line `whetstone serve: RUN listening on http://ADDR` goes to stdout \
(with --port 0, ADDR names the port picked). SIGTERM or Ctrl-C stops accepting connections, \
answers every request already received, and exits 0.")]
pub struct ServeArgs {
    #[command(flatten)]
    model: crate::model_args::ModelArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port, printed when ready).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Intra-op threads of the model (0: the run's recipe's `threads`, else all cores).
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// How long (milliseconds) the first request of a batch waits for more; 0 serves one
    /// request per forward pass.
    #[arg(long, default_value_t = DEFAULT_BATCH_WINDOW_MS, value_name = "MS")]
    batch_window_ms: u64,
    /// Most texts in one forward pass.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH, value_name = "N")]
    max_batch: usize,
    /// Most requests waiting for the model; more are answered 503 at once.
    #[arg(long, default_value_t = DEFAULT_MAX_QUEUE, value_name = "N")]
    max_queue: usize,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES, value_name = "BYTES")]
    max_body_bytes: usize,
    /// Most texts in one request (413 beyond).
    #[arg(long, default_value_t = DEFAULT_MAX_TEXTS, value_name = "N")]
    max_texts: usize,
    /// Most characters in one text (413 beyond).
    #[arg(long, default_value_t = DEFAULT_MAX_CHARS, value_name = "N")]
    max_chars: usize,
    /// Pause before every batch, in milliseconds (for tests of a full queue and of draining).
    #[arg(long, hide = true, default_value_t = 0)]
    batch_delay_ms: u64,
}

/// `whetstone serve`.
pub fn serve(a: ServeArgs) -> Result<()> {
    let run = a.model.dir();
    let opts = ServeOptions {
        run: run.clone(),
        host: a.host,
        port: a.port,
        device: a.model.device,
        precision: a.model.precision,
        task: a.model.task,
        threads: a.threads,
        batching: Batching { window: Duration::from_millis(a.batch_window_ms), max_batch: a.max_batch, max_queue: a.max_queue },
        limits: Limits { max_body_bytes: a.max_body_bytes, max_texts: a.max_texts, max_chars: a.max_chars },
        batch_delay: Duration::from_millis(a.batch_delay_ms),
    };
    whetstone_serve::serve(opts, |addr, info| {
        let name = info.metadata["run"].as_str().unwrap_or_default();
        println!("whetstone serve: {name} ({}) listening on http://{addr}", run.display());
        let _ = std::io::stdout().flush();
    })
}
