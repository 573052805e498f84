//! Where a data-parallel run meets: torchrun's environment conventions.
//!
//! `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR` and `MASTER_PORT`, as torchrun (and
//! `whetstone train --nproc N`, and cluster schedulers) set them. `WHETSTONE_DIST_TIMEOUT`
//! (seconds, default 60) bounds the rendezvous and every collective: a dead or hung rank makes
//! every other rank fail within it instead of hanging.

use crate::error::{DistError, Result};
use std::time::Duration;

/// Default bound on the rendezvous and on every collective.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The position of this process in a data-parallel run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    /// Global rank, `0..world`.
    pub rank: usize,
    /// Number of processes.
    pub world: usize,
    /// Rank on this machine (selects the GPU `cuda:LOCAL_RANK` for `--device auto|cuda`).
    pub local_rank: usize,
    /// Host of the rendezvous store (rank 0's machine).
    pub master_addr: String,
    /// Its port.
    pub master_port: u16,
    /// Bound on the rendezvous and on every collective.
    pub timeout: Duration,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T> {
    v.trim().parse().map_err(|_| DistError::Env(format!("{name}={v:?} is not a non-negative integer")))
}

impl Rendezvous {
    /// The rendezvous the environment describes, or `None` for a single process (`WORLD_SIZE`
    /// unset or 1). Malformed or inconsistent values are an error naming the variable.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(var)
    }

    /// As [`Rendezvous::from_env`], reading variables through `get`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let Some(world) = get("WORLD_SIZE") else { return Ok(None) };
        let world: usize = number("WORLD_SIZE", &world)?;
        if world == 0 {
            return Err(DistError::Env("WORLD_SIZE=0: a run needs at least one process".into()));
        }
        if world == 1 {
            return Ok(None);
        }
        let rank: usize = match get("RANK") {
            Some(r) => number("RANK", &r)?,
            None => return Err(DistError::Env(format!("WORLD_SIZE={world} but RANK is not set; launch with `whetstone train --nproc N` or torchrun, or set RANK for each process"))),
        };
        if rank >= world {
            return Err(DistError::Env(format!("RANK={rank} is not below WORLD_SIZE={world}")));
        }
        let local_rank = get("LOCAL_RANK").map(|v| number("LOCAL_RANK", &v)).transpose()?.unwrap_or(0);
        let master_addr = get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let master_port: u16 = match get("MASTER_PORT") {
            Some(p) => number("MASTER_PORT", &p)?,
            None => 29500,
        };
        if master_port == 0 {
            return Err(DistError::Env("MASTER_PORT=0 is not a port rank 0 can serve".into()));
        }
        let timeout = match get("WHETSTONE_DIST_TIMEOUT") {
            Some(t) => {
                let s: f64 = t.trim().parse().map_err(|_| DistError::Env(format!("WHETSTONE_DIST_TIMEOUT={t:?} is not a number of seconds")))?;
                if !(s.is_finite() && s > 0.0 && s < 1e7) {
                    return Err(DistError::Env(format!("WHETSTONE_DIST_TIMEOUT={t:?} must be a positive number of seconds")));
                }
                Duration::from_secs_f64(s)
            }
            None => DEFAULT_TIMEOUT,
        };
        Ok(Some(Self { rank, world, local_rank, master_addr, master_port, timeout }))
    }

    /// Whether the store's host is this machine's loopback (one-machine runs): Gloo then
    /// listens on 127.0.0.1 instead of the address the hostname resolves to.
    pub fn is_loopback(&self) -> bool {
        let a = self.master_addr.trim();
        a == "localhost" || a.starts_with("127.") || a == "::1"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn rdv(vars: &[(&str, &str)]) -> Result<Option<Rendezvous>> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Rendezvous::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn torchrun_variables_are_read_and_checked() {
        assert_eq!(rdv(&[]).unwrap(), None);
        assert_eq!(rdv(&[("WORLD_SIZE", "1"), ("RANK", "0")]).unwrap(), None);
        let r = rdv(&[("WORLD_SIZE", "4"), ("RANK", "3"), ("LOCAL_RANK", "1"), ("MASTER_ADDR", "10.0.0.5"), ("MASTER_PORT", "29400"), ("WHETSTONE_DIST_TIMEOUT", "5")]).unwrap().unwrap();
        assert_eq!((r.rank, r.world, r.local_rank, r.master_addr.as_str(), r.master_port, r.timeout), (3, 4, 1, "10.0.0.5", 29400, Duration::from_secs(5)));
        assert!(!r.is_loopback());
        let d = rdv(&[("WORLD_SIZE", "2"), ("RANK", "1")]).unwrap().unwrap();
        assert_eq!((d.master_addr.as_str(), d.master_port, d.timeout), ("127.0.0.1", 29500, DEFAULT_TIMEOUT));
        assert!(d.is_loopback());
        for (vars, needle) in [
            (vec![("WORLD_SIZE", "two")], "WORLD_SIZE=\"two\""),
            (vec![("WORLD_SIZE", "2")], "RANK is not set"),
            (vec![("WORLD_SIZE", "2"), ("RANK", "2")], "RANK=2 is not below WORLD_SIZE=2"),
            (vec![("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_PORT", "70000")], "MASTER_PORT"),
            (vec![("WORLD_SIZE", "2"), ("RANK", "0"), ("WHETSTONE_DIST_TIMEOUT", "-1")], "WHETSTONE_DIST_TIMEOUT"),
            (vec![("WORLD_SIZE", "0")], "WORLD_SIZE=0"),
        ] {
            let e = rdv(&vars).unwrap_err().to_string();
            assert!(e.contains(needle), "{vars:?}: {e}");
        }
    }
}
