//! How the loop reports progress: an [`Observer`] sees every step and every message.
//! The loop itself draws nothing; a progress bar is an observer (whetstone-run has one).

/// Where the loop is, after a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStatus {
    /// Optimiser steps completed.
    pub step: u64,
    /// Steps the run will take in all.
    pub total: u64,
    /// The epoch of the step (0-based).
    pub epoch: u64,
    /// Mean training loss since the last logged step.
    pub loss: f64,
    /// Training examples per second in this session.
    pub seq_per_s: f64,
    /// Estimated seconds left.
    pub eta_s: f64,
    /// Whether this step is one the metrics log records (every `log_every` steps).
    pub logged: bool,
}

/// Receives the loop's progress. Every method has a no-op default.
pub trait Observer: Send {
    /// Training starts (or resumes) at `start` of `total` steps.
    fn start(&mut self, _total: u64, _start: u64) {}
    /// A step finished.
    fn step(&mut self, _status: &StepStatus) {}
    /// A line for the user (validation results, early stopping).
    fn message(&mut self, _line: &str) {}
    /// Training ended (normally or not).
    fn finish(&mut self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {}

/// Plain lines on stderr: logged steps and messages (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lines;

impl Observer for Lines {
    fn step(&mut self, s: &StepStatus) {
        if s.logged {
            eprint_line(&format!("step {}/{} epoch {} loss {:.4} {:.0} seq/s ETA {:.0}s", s.step, s.total, s.epoch + 1, s.loss, s.seq_per_s, s.eta_s));
        }
    }
    fn message(&mut self, line: &str) {
        eprint_line(line);
    }
}

/// Writes `line` and its newline to stderr with one `write_all` of one buffer, so that lines
/// from processes that share a stderr pipe (the ranks of a data-parallel run) do not
/// interleave mid-line: `eprintln!` writes each piece separately. A pipe write of up to
/// PIPE_BUF bytes (4 KiB on Linux) is atomic. A failed write to stderr is ignored (where
/// `eprintln!` would panic).
pub fn eprint_line(line: &str) {
    use std::io::Write;
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let _ = std::io::stderr().lock().write_all(buf.as_bytes());
}
