//! What a server is started with: the run, the address, batching and limits.

use std::path::PathBuf;
use std::time::Duration;
use whetstone_run::Precision;

/// Default batching window: how long the first request of a batch waits for others.
pub const DEFAULT_BATCH_WINDOW_MS: u64 = 5;
/// Default most texts in one forward pass.
pub const DEFAULT_MAX_BATCH: usize = 32;
/// Default most requests waiting for the model.
pub const DEFAULT_MAX_QUEUE: usize = 256;
/// Default largest request body (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default most texts in one request.
pub const DEFAULT_MAX_TEXTS: usize = 256;
/// Default most characters in one text (the model reads at most its first `max_len × 32`).
pub const DEFAULT_MAX_CHARS: usize = 1 << 16;

/// How requests are grouped into forward passes.
#[derive(Clone, Debug)]
pub struct Batching {
    /// How long the first request of a batch waits for more; zero: one request per batch.
    pub window: Duration,
    /// Most texts in one batch (a larger single request runs alone).
    pub max_batch: usize,
    /// Most requests waiting for the model; one more is answered 503 at once.
    pub max_queue: usize,
}

/// What one request may carry; more is answered 413.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_texts: usize,
    pub max_chars: usize,
}

/// Everything `whetstone serve` is started with.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The run folder.
    pub run: PathBuf,
    pub host: String,
    /// 0: any free port (the ready line names it).
    pub port: u16,
    /// cpu, cuda, cuda:N or auto (default: the run's).
    pub device: Option<String>,
    /// Precision of inference (default: the run's).
    pub precision: Option<Precision>,
    /// A multi-task run's task.
    pub task: Option<String>,
    /// Intra-op threads of the model (0: the run's recipe's `threads`, else libtorch's default).
    pub threads: usize,
    pub batching: Batching,
    pub limits: Limits,
    /// A pause before every batch (for tests of a full queue and of draining).
    pub batch_delay: Duration,
}

impl ServeOptions {
    /// Defaults for everything but the run.
    pub fn new(run: impl Into<PathBuf>) -> Self {
        ServeOptions {
            run: run.into(),
            host: "127.0.0.1".into(),
            port: 8080,
            device: None,
            precision: None,
            task: None,
            threads: 0,
            batching: Batching { window: Duration::from_millis(DEFAULT_BATCH_WINDOW_MS), max_batch: DEFAULT_MAX_BATCH, max_queue: DEFAULT_MAX_QUEUE },
            limits: Limits { max_body_bytes: DEFAULT_MAX_BODY_BYTES, max_texts: DEFAULT_MAX_TEXTS, max_chars: DEFAULT_MAX_CHARS },
            batch_delay: Duration::ZERO,
        }
    }

    /// An error naming the flag whose value cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (flag, v) in [("--max-batch", self.batching.max_batch), ("--max-queue", self.batching.max_queue), ("--max-body-bytes", self.limits.max_body_bytes), ("--max-texts", self.limits.max_texts), ("--max-chars", self.limits.max_chars)] {
            if v == 0 {
                anyhow::bail!("{flag} must be at least 1");
            }
        }
        Ok(())
    }
}
