//! `--nproc N`: start N local worker processes, torchrun's standalone mode.
//!
//! Each worker is this same program with the same arguments (minus the launcher's own), and
//! torchrun's environment: `RANK` = `LOCAL_RANK` = 0‥N−1, `WORLD_SIZE` = `LOCAL_WORLD_SIZE` =
//! N, `MASTER_ADDR` = 127.0.0.1 and a free `MASTER_PORT`. Unless set already, `OMP_NUM_THREADS`
//! is the machine's cores divided by N (at least 1), so the workers do not oversubscribe the
//! cores (torchrun sets 1).
//!
//! The launcher waits for all workers. When one fails, it says which (exit code or signal),
//! lets the others end on their own (they fail within their collective timeout, naming the
//! missing rank), and stops any still running after that timeout and a grace period. Its exit
//! status is the first failure's (128 + signal for a signal), else 0.

use crate::error::{DistError, Result};
use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// How N workers are started.
#[derive(Debug, Clone)]
pub struct LocalLaunch {
    /// Number of worker processes.
    pub nproc: usize,
    /// The rendezvous port (`None`: a free one).
    pub port: Option<u16>,
    /// The workers' collective timeout (`WHETSTONE_DIST_TIMEOUT`): how long the launcher
    /// waits after a failure before it stops the remaining workers.
    pub timeout: Duration,
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| DistError::Launch(format!("finding a free port on 127.0.0.1: {e}")))?;
    Ok(l.local_addr().map_err(|e| DistError::Launch(e.to_string()))?.port())
}

fn describe(status: ExitStatus) -> (String, i32) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => (format!("exited with code {c}"), c),
        (None, Some(s)) => (format!("was killed by signal {s}"), 128 + s),
        _ => ("ended".into(), 1),
    }
}

impl LocalLaunch {
    /// Run `program args…` as `nproc` workers and wait for them; the exit code to forward.
    pub fn run(&self, program: &Path, args: &[OsString]) -> Result<i32> {
        if self.nproc < 1 {
            return Err(DistError::Launch("--nproc must be at least 1".into()));
        }
        let port = match self.port {
            Some(p) => p,
            None => free_port()?,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (cores / self.nproc).max(1).to_string();
        let mut children: Vec<Option<Child>> = Vec::with_capacity(self.nproc);
        for rank in 0..self.nproc {
            let mut c = Command::new(program);
            c.args(args)
                .env("RANK", rank.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("WORLD_SIZE", self.nproc.to_string())
                .env("LOCAL_WORLD_SIZE", self.nproc.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("WHETSTONE_DIST_TIMEOUT", format!("{}", self.timeout.as_secs_f64()));
            if std::env::var_os("OMP_NUM_THREADS").is_none() {
                c.env("OMP_NUM_THREADS", &threads);
            }
            match c.spawn() {
                Ok(child) => children.push(Some(child)),
                Err(e) => {
                    for ch in children.iter_mut().flatten() {
                        let _ = ch.kill();
                        let _ = ch.wait();
                    }
                    return Err(DistError::Launch(format!("starting worker {rank} ({}): {e}", program.display())));
                }
            }
        }
        let mut first_failure: Option<(usize, String, i32, Instant)> = None;
        let grace = self.timeout + Duration::from_secs(15);
        loop {
            let mut running = 0;
            for (rank, slot) in children.iter_mut().enumerate() {
                let Some(child) = slot else { continue };
                match child.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() && first_failure.is_none() {
                            let (what, code) = describe(status);
                            eprintln!("whetstone: rank {rank} (pid {}) {what}; waiting up to {:.0} s for the other ranks to stop", child.id(), grace.as_secs_f64());
                            first_failure = Some((rank, what, code, Instant::now()));
                        }
                        *slot = None;
                    }
                    Ok(None) => running += 1,
                    Err(e) => return Err(DistError::Launch(format!("waiting for worker {rank}: {e}"))),
                }
            }
            if running == 0 {
                break;
            }
            if let Some((_, _, _, at)) = &first_failure {
                if at.elapsed() > grace {
                    for (rank, slot) in children.iter_mut().enumerate() {
                        if let Some(child) = slot {
                            eprintln!("whetstone: stopping rank {rank} (pid {}), still running {:.0} s after the failure", child.id(), grace.as_secs_f64());
                            let _ = child.kill();
                            let _ = child.wait();
                            *slot = None;
                        }
                    }
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(match first_failure {
            Some((rank, what, code, _)) => {
                eprintln!("whetstone: the run failed: rank {rank} {what}");
                code.clamp(1, 255)
            }
            None => 0,
        })
    }
}
