//! A polite stop: a request (from a Ctrl-C handler, say) that the loop honours at the next
//! step boundary by writing a checkpoint and returning [`crate::Outcome::Interrupted`].
//!
//! The request is process-wide. In a data-parallel run the replicas agree on it with the
//! step's gradient reduction, so all of them stop after the same step.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Ask every running [`crate::Trainer::fit`] of this process to stop at its next step boundary.
/// Safe to call from a signal handler (one atomic store).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Forget a stop request (before starting another run in the same process).
pub fn clear_stop() {
    STOP.store(false, Ordering::SeqCst);
}
