//! [`DataParallel`]: the replicas of a run over a c10d process group.

use crate::error::{DistError, Missing, Result};
use crate::rendezvous::Rendezvous;
use std::time::{Duration, Instant};
use tch::{Device, Tensor};
use whetstone_torch_ext::c10d::{Backend, ProcessGroup, ReduceOp, Store};
use whetstone_torch_ext::ExtError;
use whetstone_train::{Reduced, Replicas};

/// Default size of a gradient bucket: small gradients are packed into buffers of up to this
/// many bytes and reduced together (PyTorch DDP's `bucket_cap_mb` is 25 MiB too).
pub const DEFAULT_BUCKET_BYTES: usize = 25 << 20;

/// How long a rank waits for the others to answer the liveness probe after a failure.
const PROBE_WINDOW: Duration = Duration::from_secs(5);

/// Communication counters of the gradient all-reduce.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommStats {
    /// Steps reduced.
    pub steps: u64,
    /// Seconds spent reducing (scaling, packing, the collectives and unpacking).
    pub seconds: f64,
    /// Gradient bytes all-reduced (per rank, not counting the ring's traffic).
    pub bytes: u64,
    /// Collective calls (the small agreement call of each step included).
    pub calls: u64,
}

/// This process as one replica of a data-parallel run: a TCPStore rendezvous and a Gloo (CPU)
/// or NCCL (CUDA) process group. Give it to [`whetstone_train::Trainer::replicas`].
pub struct DataParallel {
    store: Store,
    group: ProcessGroup,
    rank: usize,
    world: usize,
    device: Device,
    bucket_bytes: usize,
    stats: CommStats,
}

impl DataParallel {
    /// Join the run `rdv` describes, for tensors on `device` (Gloo for the CPU, NCCL for CUDA).
    /// Rank 0 serves the store; every rank waits up to the rendezvous timeout for the others.
    pub fn join(rdv: &Rendezvous, device: Device) -> Result<Self> {
        let store = Store::connect(&rdv.master_addr, rdv.master_port, rdv.rank, rdv.world, rdv.timeout).map_err(|e| rendezvous_error(rdv, e))?;
        let backend = Backend::for_device(device);
        let host = rdv.is_loopback().then_some("127.0.0.1");
        let group = ProcessGroup::new(&store, rdv.rank, rdv.world, backend, host, rdv.timeout).map_err(|e| rendezvous_error(rdv, e))?;
        Ok(Self { store, group, rank: rdv.rank, world: rdv.world, device, bucket_bytes: DEFAULT_BUCKET_BYTES, stats: CommStats::default() })
    }

    /// Pack gradients into buckets of at most `bytes` (default [`DEFAULT_BUCKET_BYTES`]).
    pub fn with_bucket_bytes(mut self, bytes: usize) -> Self {
        self.bucket_bytes = bytes.max(1);
        self
    }

    /// The process group's backend.
    pub fn backend(&self) -> Backend {
        self.group.backend()
    }

    /// Communication counters so far.
    pub fn stats(&self) -> CommStats {
        self.stats
    }

    /// Rank 0's `value` for `key` on every rank (rank 0 passes it; the others' is ignored),
    /// through the store: for things that are not tensors, such as a tokenizer.
    pub fn share(&mut self, key: &str, value: Option<&[u8]>) -> Result<Vec<u8>> {
        let key = format!("whetstone/share/{key}");
        if self.rank == 0 {
            let v = value.ok_or_else(|| DistError::Env(format!("rank 0 has no value to share for {key}")))?;
            self.store.set(&key, v).map_err(|e| self.lost("sharing ".to_string() + &key, e))?;
            Ok(v.to_vec())
        } else {
            self.store.get(&key).map_err(|e| self.lost("receiving ".to_string() + &key, e))
        }
    }

    /// Check that `value` is the same on every rank. Every rank publishes its value through the
    /// store, waits for the others, and compares all of them with rank 0's, so every rank fails
    /// alike, naming `what` and the ranks that differ.
    pub fn agree(&mut self, what: &str, value: &str) -> Result<()> {
        let key = |r: usize| format!("whetstone/agree/{what}/{r}");
        self.store.set(&key(self.rank), value.as_bytes()).map_err(|e| self.lost(format!("publishing the {what}"), e))?;
        self.barrier()?;
        let mut values = Vec::with_capacity(self.world);
        for r in 0..self.world {
            values.push(self.store.get(&key(r)).map_err(|e| self.lost(format!("reading rank {r}'s {what}"), e))?);
        }
        let differ: Vec<usize> = (1..self.world).filter(|&r| values[r] != values[0]).collect();
        if let Some(&first) = differ.first() {
            let detail = format!(
                "rank(s) {} differ; first difference: {}",
                differ.iter().map(usize::to_string).collect::<Vec<_>>().join(", "),
                summarise(&String::from_utf8_lossy(&values[0]), &String::from_utf8_lossy(&values[first]), first)
            );
            return Err(DistError::Mismatch { rank: self.rank, world: self.world, what: what.into(), detail });
        }
        Ok(())
    }

    /// Wait for every rank.
    pub fn barrier(&mut self) -> Result<()> {
        self.group.barrier().map_err(|e| self.lost("barrier".into(), e))
    }

    /// All-reduce `ts` in place, in buckets: tensors of at least a quarter bucket go alone
    /// (in place, no copy), smaller ones of one kind are packed into a bucket buffer.
    fn reduce_buckets(&mut self, ts: &[Tensor]) -> Result<()> {
        let (mut alone, mut small): (Vec<Tensor>, Vec<Tensor>) = (Vec::new(), Vec::new());
        for t in ts {
            let bytes = t.numel() * t.kind().elt_size_in_bytes();
            self.stats.bytes += bytes as u64;
            if bytes * 4 >= self.bucket_bytes && t.is_contiguous() {
                alone.push(t.shallow_clone());
            } else {
                small.push(t.shallow_clone());
            }
        }
        let mut packs: Vec<(Tensor, Vec<Tensor>)> = Vec::new();
        let mut current: Vec<Tensor> = Vec::new();
        let mut current_bytes = 0usize;
        let flush = |current: &mut Vec<Tensor>, packs: &mut Vec<(Tensor, Vec<Tensor>)>| -> Result<()> {
            if current.is_empty() {
                return Ok(());
            }
            let flat: Vec<Tensor> = current.iter().map(|t| t.reshape([-1])).collect();
            packs.push((Tensor::f_cat(&flat, 0)?, std::mem::take(current)));
            Ok(())
        };
        for t in small {
            let bytes = t.numel() * t.kind().elt_size_in_bytes();
            let same_kind = current.first().is_none_or(|c| c.kind() == t.kind() && c.device() == t.device());
            if !same_kind || current_bytes + bytes > self.bucket_bytes {
                flush(&mut current, &mut packs)?;
                current_bytes = 0;
            }
            current_bytes += bytes;
            current.push(t);
        }
        flush(&mut current, &mut packs)?;
        let mut all: Vec<Tensor> = alone;
        all.extend(packs.iter().map(|(p, _)| p.shallow_clone()));
        self.stats.calls += all.len() as u64;
        self.group.all_reduce(&all, ReduceOp::Sum).map_err(|e| self.lost("all_reduce of the gradients".into(), e))?;
        tch::no_grad(|| -> Result<()> {
            for (pack, members) in &packs {
                let mut off = 0i64;
                for m in members {
                    let n = m.numel() as i64;
                    m.shallow_clone().f_copy_(&pack.f_narrow(0, off, n)?.f_view(m.size().as_slice())?)?;
                    off += n;
                }
            }
            Ok(())
        })
    }

    /// The error for a failed collective: after a liveness probe through the store, it names
    /// the ranks that did not answer (died or hung), or rank 0 when the store is gone.
    fn lost(&self, op: String, e: ExtError) -> DistError {
        let message = match e {
            ExtError::Collective { message, .. } => message,
            other => other.to_string(),
        };
        let missing = self.probe();
        DistError::Peer { rank: self.rank, world: self.world, op, message, missing }
    }

    fn probe(&self) -> Missing {
        let key = |r: usize| format!("whetstone/alive/{r}");
        if self.store.set(&key(self.rank), b"1").is_err() {
            return if self.rank == 0 { Missing::Unknown } else { Missing::StoreHost };
        }
        let started = Instant::now();
        loop {
            let mut missing = Vec::new();
            for r in (0..self.world).filter(|&r| r != self.rank) {
                match self.store.check(&key(r)) {
                    Ok(true) => {}
                    Ok(false) => missing.push(r),
                    Err(_) => return if self.rank == 0 { Missing::Unknown } else { Missing::StoreHost },
                }
            }
            if missing.is_empty() {
                return Missing::None;
            }
            if started.elapsed() >= PROBE_WINDOW {
                return Missing::Ranks(missing, PROBE_WINDOW.as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A rendezvous that failed: name where and how long it waited.
fn rendezvous_error(rdv: &Rendezvous, e: ExtError) -> DistError {
    let message = match e {
        ExtError::Collective { message, .. } => message,
        other => other.to_string(),
    };
    DistError::Peer {
        rank: rdv.rank,
        world: rdv.world,
        op: format!("rendezvous at {}:{} (waited up to {:.0} s for all {} processes)", rdv.master_addr, rdv.master_port, rdv.timeout.as_secs_f64(), rdv.world),
        message,
        missing: Missing::Unknown,
    }
}

/// The first difference between rank 0's text and rank `other`'s, shortened.
fn summarise(zero: &str, theirs: &str, other: usize) -> String {
    let at = zero.chars().zip(theirs.chars()).take_while(|(a, b)| a == b).count();
    let cut = |s: &str| s.chars().skip(at.saturating_sub(20)).take(60).collect::<String>();
    format!("rank 0 has …{}…, rank {other} has …{}…", cut(zero), cut(theirs))
}

impl Replicas for DataParallel {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn broadcast(&mut self, tensors: &[Tensor]) -> whetstone_train::Result<()> {
        self.group.broadcast(tensors, 0).map_err(|e| self.lost("broadcast of rank 0's state".into(), e))?;
        Ok(())
    }

    fn reduce_gradients(&mut self, grads: &[Tensor], examples: usize, loss: f64, flag: bool, stop: bool) -> whetstone_train::Result<Reduced> {
        let t0 = Instant::now();
        // One small call agrees on the global example count, loss, overflow and stop request.
        let n = examples as f64;
        let head = Tensor::from_slice(&[n, n * loss, f64::from(u8::from(flag)), f64::from(u8::from(stop))]).to_device(self.device);
        self.stats.calls += 1;
        self.group.all_reduce(std::slice::from_ref(&head), ReduceOp::Sum).map_err(|e| self.lost("all_reduce of the step's examples and loss".into(), e))?;
        let head = Vec::<f64>::try_from(&head.to_device(Device::Cpu)).map_err(DistError::from)?;
        let total = head[0];
        // Σ_r (n_r / N) g_r: the example-weighted mean of the replicas' mean gradients.
        let scale = n / total;
        if scale != 1.0 {
            tch::no_grad(|| -> Result<()> {
                for g in grads {
                    let _ = g.shallow_clone().f_mul_scalar_(scale)?;
                }
                Ok(())
            })?;
        }
        self.reduce_buckets(grads)?;
        self.stats.steps += 1;
        self.stats.seconds += t0.elapsed().as_secs_f64();
        Ok(Reduced { examples: total.round() as usize, loss: head[1] / total, flag: head[2] > 0.0, stop: head[3] > 0.0 })
    }
}
