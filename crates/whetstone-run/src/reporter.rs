//! Progress output: an indicatif bar on a terminal, plain lines otherwise (CI logs, pipes).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use whetstone_train::{eprint_line, Observer, StepStatus};
use std::io::IsTerminal;

/// Shows training progress with loss, throughput and ETA: an [`Observer`] of the loop.
pub struct Reporter {
    bar: Option<ProgressBar>,
    total: u64,
    quiet: bool,
}

impl Observer for Reporter {
    fn start(&mut self, total: u64, start: u64) {
        *self = Reporter::new(total, start, self.quiet);
    }
    fn step(&mut self, s: &StepStatus) {
        self.update(s.step, s.epoch, s.loss, s.seq_per_s, s.eta_s, s.logged);
    }
    fn message(&mut self, line: &str) {
        self.println(line);
    }
    fn finish(&mut self) {
        Reporter::finish(self);
    }
}

impl Reporter {
    /// A reporter that shows nothing until the loop starts (then a bar on a terminal, plain
    /// lines otherwise); `quiet` suppresses everything.
    pub fn quiet(quiet: bool) -> Self {
        Self { bar: None, total: 0, quiet }
    }

    /// A reporter for `total` steps starting at `start`. `quiet` suppresses everything.
    pub fn new(total: u64, start: u64, quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Self { bar: None, total, quiet };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_position(start);
        Self { bar: Some(bar), total, quiet }
    }

    /// Advance to `step` with the latest statistics; plain mode prints only when `log` is set.
    pub fn update(&self, step: u64, epoch: u64, loss: f64, seq_per_s: f64, eta_s: f64, log: bool) {
        let msg = format!("epoch {} loss {loss:.4} {seq_per_s:.0} seq/s", epoch + 1);
        match &self.bar {
            Some(b) => {
                b.set_position(step);
                b.set_message(msg);
            }
            None if log && !self.quiet => eprint_line(&format!("step {step}/{} {msg} ETA {:.0}s", self.total, eta_s)),
            None => {}
        }
    }

    /// Print a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None if !self.quiet => eprint_line(line),
            None => {}
        }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
