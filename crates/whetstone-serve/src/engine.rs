//! The inference thread: it alone owns the model (libtorch modules are not `Sync`), takes
//! requests from a bounded queue, and answers them in dynamic batches.
//!
//! The first request of a batch waits up to the batching window for others, until the batch
//! holds `max_batch` texts; a request that would overflow the batch starts the next one. A
//! window of zero serves one request per forward pass.

use crate::info::RunInfo;
use crate::options::{Batching, ServeOptions};
use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use whetstone_run::multitask::TaskPrediction;
use whetstone_run::Predictor;

/// The answer to one job: one prediction per text, or the model's error.
pub type Answer = std::result::Result<Vec<TaskPrediction>, String>;

/// Non-empty texts of one request and where their answer goes.
pub struct Job {
    pub texts: Vec<String>,
    pub reply: oneshot::Sender<Answer>,
}

/// Counters the server reports in `/health` and `/metadata`.
#[derive(Default)]
pub struct Stats {
    /// Requests accepted into the queue so far.
    pub received: AtomicU64,
    pub requests: AtomicU64,
    pub texts: AtomicU64,
    pub batches: AtomicU64,
    pub largest_batch: AtomicU64,
    /// Requests answered 503 because the queue was full.
    pub rejected: AtomicU64,
    /// Requests waiting in the queue now.
    pub queued: AtomicUsize,
    /// False once the inference thread has stopped.
    pub running: AtomicBool,
}

impl Stats {
    pub fn to_json(&self) -> Value {
        let (requests, texts, batches) = (self.requests.load(Ordering::Relaxed), self.texts.load(Ordering::Relaxed), self.batches.load(Ordering::Relaxed));
        let mean = |n: u64| if batches == 0 { 0.0 } else { n as f64 / batches as f64 };
        json!({
            "requests_received": self.received.load(Ordering::SeqCst),
            "requests_served": requests,
            "texts_served": texts,
            "batches_served": batches,
            "mean_batch_size": mean(texts),
            "mean_requests_per_batch": mean(requests),
            "largest_batch": self.largest_batch.load(Ordering::Relaxed),
            "rejected_queue_full": self.rejected.load(Ordering::Relaxed),
            "queue_depth": self.queued.load(Ordering::Relaxed),
        })
    }
}

/// Why a job was not queued.
pub enum Refused {
    /// The queue holds `max_queue` requests.
    Full,
    /// The inference thread has stopped.
    Stopped,
}

/// The sending side of the queue, shared by the HTTP handlers.
#[derive(Clone)]
pub struct Queue {
    tx: SyncSender<Job>,
    pub stats: Arc<Stats>,
}

impl Queue {
    /// Queue `job` without waiting: a full queue refuses it at once.
    pub fn submit(&self, job: Job) -> std::result::Result<(), Refused> {
        self.stats.queued.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(job) {
            Ok(()) => {
                self.stats.received.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                self.stats.queued.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => {
                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        Refused::Full
                    }
                    TrySendError::Disconnected(_) => Refused::Stopped,
                })
            }
        }
    }
}

/// Start the inference thread: it loads the run (on that thread), reports what it loaded, then
/// serves jobs until every [`Queue`] is dropped and the queue is empty.
pub fn start(opts: &ServeOptions) -> Result<(Queue, RunInfo, JoinHandle<()>)> {
    let (tx, rx) = sync_channel::<Job>(opts.batching.max_queue);
    let stats = Arc::new(Stats::default());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<RunInfo>>();
    let (o, s) = (opts.clone(), stats.clone());
    let handle = std::thread::Builder::new()
        .name("whetstone-model".into())
        .spawn(move || {
            let predictor = match load(&o) {
                Ok((p, info)) => {
                    let _ = ready_tx.send(Ok(info));
                    p
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            s.running.store(true, Ordering::SeqCst);
            serve_jobs(&predictor, &rx, &o.batching, o.batch_delay, &s);
            s.running.store(false, Ordering::SeqCst);
        })
        .context("starting the inference thread")?;
    let info = ready_rx.recv().map_err(|_| anyhow!("the inference thread stopped while loading {}", opts.run.display()))??;
    Ok((Queue { tx, stats }, info, handle))
}

/// Load the run and describe it, setting the model's intra-op threads.
fn load(o: &ServeOptions) -> Result<(Predictor, RunInfo)> {
    let recipe = whetstone_run::read_recipe(&o.run)?;
    let threads = if o.threads > 0 { o.threads } else { recipe.threads };
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    let predictor = Predictor::open(&o.run, o.device.as_deref(), o.precision, o.task.as_deref())?;
    let info = RunInfo::describe(o, &recipe, &predictor)?;
    Ok((predictor, info))
}

/// Answer jobs in batches until the queue is closed and empty.
fn serve_jobs(predictor: &Predictor, rx: &Receiver<Job>, batching: &Batching, delay: Duration, stats: &Stats) {
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        stats.queued.fetch_sub(1, Ordering::SeqCst);
        let (batch, overflow) = collect(first, rx, batching, stats);
        next = overflow;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        run_batch(predictor, batch, stats);
    }
}

/// The batch that starts with `first`: jobs arriving within the window, up to `max_batch`
/// texts; a job that would overflow it is returned to start the next batch.
fn collect(first: Job, rx: &Receiver<Job>, b: &Batching, stats: &Stats) -> (Vec<Job>, Option<Job>) {
    let mut n = first.texts.len();
    let mut batch = vec![first];
    if b.window.is_zero() {
        return (batch, None);
    }
    let deadline = Instant::now() + b.window;
    while n < b.max_batch {
        let left = deadline.saturating_duration_since(Instant::now());
        let job = match rx.recv_timeout(left) {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        };
        stats.queued.fetch_sub(1, Ordering::SeqCst);
        if n + job.texts.len() > b.max_batch {
            return (batch, Some(job));
        }
        n += job.texts.len();
        batch.push(job);
    }
    (batch, None)
}

/// One forward pass over every text of `batch`; each job gets its own predictions back.
fn run_batch(predictor: &Predictor, batch: Vec<Job>, stats: &Stats) {
    let texts: Vec<String> = batch.iter().flat_map(|j| j.texts.iter().cloned()).collect();
    let n = texts.len() as u64;
    let result = predictor.predict(&texts).map_err(|e| e.to_string());
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.requests.fetch_add(batch.len() as u64, Ordering::Relaxed);
    stats.texts.fetch_add(n, Ordering::Relaxed);
    stats.largest_batch.fetch_max(n, Ordering::Relaxed);
    match result {
        Ok(mut preds) => {
            for job in batch.into_iter().rev() {
                let mine = preds.split_off(preds.len() - job.texts.len());
                let _ = job.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            for job in batch {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: usize) -> Job {
        Job { texts: vec!["x".into(); n], reply: oneshot::channel().0 }
    }

    fn batching(window_ms: u64, max_batch: usize) -> Batching {
        Batching { window: Duration::from_millis(window_ms), max_batch, max_queue: 16 }
    }

    #[test]
    fn collects_queued_jobs_up_to_max_batch_and_keeps_the_overflow() {
        let (tx, rx) = sync_channel(16);
        for n in [2, 3, 4] {
            tx.send(job(n)).unwrap();
        }
        let (batch, next) = collect(job(1), &rx, &batching(50, 7), &Stats::default());
        assert_eq!(batch.iter().map(|j| j.texts.len()).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(next.map(|j| j.texts.len()), Some(4));
    }

    #[test]
    fn window_zero_serves_one_request_per_batch() {
        let (tx, rx) = sync_channel(16);
        tx.send(job(1)).unwrap();
        let (batch, next) = collect(job(1), &rx, &batching(0, 32), &Stats::default());
        assert_eq!(batch.len(), 1);
        assert!(next.is_none());
        assert!(rx.try_recv().is_ok(), "the queued job stays for the next batch");
    }

    #[test]
    fn the_window_ends_a_batch_that_is_not_full() {
        let (_tx, rx) = sync_channel::<Job>(16);
        let start = Instant::now();
        let (batch, _) = collect(job(1), &rx, &batching(30, 32), &Stats::default());
        assert_eq!(batch.len(), 1);
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(30) && waited < Duration::from_secs(2), "{waited:?}");
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let (tx, _rx) = sync_channel(1);
        let q = Queue { tx, stats: Arc::new(Stats::default()) };
        assert!(q.submit(job(1)).is_ok());
        assert!(matches!(q.submit(job(1)), Err(Refused::Full)));
        assert_eq!(q.stats.rejected.load(Ordering::Relaxed), 1);
        assert_eq!(q.stats.queued.load(Ordering::Relaxed), 1);
    }
}
