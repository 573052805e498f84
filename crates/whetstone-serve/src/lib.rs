//! `whetstone serve`: an HTTP JSON server over any run folder (fp32, bf16, int8, pruned or
//! distilled students, or one task of a multi-task run), on axum and tokio.
//!
//! * `POST /predict` with `{"text": "…"}` answers `{"label": L, "prob": P, "probs": {label:
//!   p, …}}` (a token task: `{"words": […], "tags": […]}`); with `{"texts": […]}` it answers
//!   `{"predictions": [one such object per text]}`. An empty text gets a null label.
//! * `GET /health`: `{"status": "ok", "stats": {…}}` with the batching counters.
//! * `GET /metadata`: the run, its recipe's sha256, model, precision, labels, `max_len`,
//!   the batching settings and limits, and the counters.
//!
//! **Dynamic batching** ([`engine`]): one inference thread owns the model and takes requests
//! from a bounded queue; requests arriving within the batching window share one forward pass
//! of at most `max_batch` texts. **Bounds**: a body over `max_body_bytes`, more than
//! `max_texts` texts or a text over `max_chars` characters is a 413; a full queue is a 503 at
//! once, so memory stays bounded under any load. **Shutdown**: SIGTERM or SIGINT stops
//! accepting connections, answers every request already received, and returns.

pub mod engine;
mod info;
pub mod options;
pub mod request;
mod routes;

pub use info::RunInfo;
pub use options::{Batching, Limits, ServeOptions};

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;

/// Load the run, listen, call `ready` with the bound address, and serve until SIGTERM or
/// SIGINT; then drain the requests in flight and return.
pub fn serve(opts: ServeOptions, ready: impl FnOnce(SocketAddr, &RunInfo)) -> Result<()> {
    opts.validate()?;
    let (queue, info, model_thread) = engine::start(&opts)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("whetstone-http").build().context("starting the HTTP runtime")?;
    runtime.block_on(async {
        let addr = format!("{}:{}", opts.host, opts.port);
        let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr} (--host/--port)"))?;
        let local = listener.local_addr().context("reading the bound address")?;
        // The signal handlers are installed before the ready line, so a SIGTERM sent the
        // moment it appears is a graceful shutdown, not a kill.
        let shutdown = shutdown_signal()?;
        ready(local, &info);
        let app = Arc::new(routes::App { queue, info, limits: opts.limits.clone() });
        axum::serve(listener, routes::router(app)).with_graceful_shutdown(shutdown).await.context("serving HTTP")
    })?;
    // Every handler (and its queue handle) is gone: the model thread answers what is left and stops.
    model_thread.join().map_err(|_| anyhow::anyhow!("the inference thread panicked"))?;
    Ok(())
}

/// A future that resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this
/// is called (inside the runtime), not when the future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        eprintln!("whetstone serve: shutting down; answering the requests in flight");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("whetstone serve: shutting down; answering the requests in flight");
    })
}
