//! libtorch's distributed engine, c10d: the rendezvous store and the process groups that
//! PyTorch DDP runs on (feature `c10d`).
//!
//! - [`Store`]: a `c10d::TCPStore`. Rank 0 serves it at `host:port`, the other ranks connect;
//!   it is a small key-value store for rendezvous and out-of-band messages.
//! - [`ProcessGroup`]: `ProcessGroupGloo` (CPU tensors) or, when libtorch has CUDA and its NCCL
//!   headers were found at build time ([`nccl_compiled`]), `ProcessGroupNCCL` (CUDA tensors),
//!   with all-reduce, broadcast, all-gather and barrier. Every collective has the group's
//!   timeout; a failure or a timeout comes back as [`ExtError::Collective`] naming the rank and
//!   the operation. C++ exceptions never cross into Rust.
//!
//! Tensors are reduced in place and must be dense and contiguous. Gloo has no average: [`ReduceOp::Avg`]
//! sums and divides, as `torch.distributed` does for Gloo users.

use crate::error::{ExtError, Result};
use crate::ffi::{self, handles};
use std::ffi::{c_char, c_int, c_void, CString};
use std::time::Duration;
use tch::{Device, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn wt_nccl_compiled() -> c_int;
    fn wt_store_new(host: *const c_char, port: c_int, is_server: c_int, world: c_int, timeout_ms: i64, out: *mut *mut c_void) -> *mut c_char;
    fn wt_store_free(s: *mut c_void);
    fn wt_store_set(s: *mut c_void, key: *const c_char, value: *const u8, n: i64) -> *mut c_char;
    fn wt_store_get(s: *mut c_void, key: *const c_char, value: *mut *mut u8, n: *mut i64) -> *mut c_char;
    fn wt_store_check(s: *mut c_void, key: *const c_char, present: *mut c_int) -> *mut c_char;
    fn wt_store_add(s: *mut c_void, key: *const c_char, delta: i64, value: *mut i64) -> *mut c_char;
    fn wt_group_new(s: *mut c_void, rank: c_int, world: c_int, backend: c_int, hostname: *const c_char, timeout_ms: i64, out: *mut *mut c_void) -> *mut c_char;
    fn wt_group_free(g: *mut c_void);
    fn wt_allreduce(g: *mut c_void, ts: *const *mut C_tensor, n: i64, op: c_int) -> *mut c_char;
    fn wt_broadcast(g: *mut c_void, ts: *const *mut C_tensor, n: i64, root: c_int) -> *mut c_char;
    fn wt_allgather(g: *mut c_void, input: *mut C_tensor, outputs: *const *mut C_tensor, n: i64) -> *mut c_char;
    fn wt_barrier(g: *mut c_void) -> *mut c_char;
}

/// Whether this build has libtorch's NCCL process group (libtorch with CUDA and NCCL's headers
/// found when whetstone-torch-ext was compiled).
pub fn nccl_compiled() -> bool {
    // SAFETY: no arguments.
    unsafe { wt_nccl_compiled() != 0 }
}

fn c_string(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| ExtError::Invalid(format!("{what} `{}` contains a NUL byte", s.escape_debug())))
}

fn millis(d: Duration) -> Result<i64> {
    let ms = i64::try_from(d.as_millis()).map_err(|_| ExtError::Invalid(format!("timeout {d:?} is too long")))?;
    if ms <= 0 {
        return Err(ExtError::Invalid("a timeout must be at least 1 ms".into()));
    }
    Ok(ms)
}

/// A `c10d::TCPStore`: the rendezvous key-value store.
pub struct Store {
    ptr: *mut c_void,
    rank: usize,
}

// SAFETY: the store is a heap object behind a pointer that only this value owns; TCPStore
// serialises its own socket access.
unsafe impl Send for Store {}

impl Store {
    /// Serve (rank 0) or join (other ranks) the store at `host:port` for `world` processes,
    /// waiting up to `timeout` for the server and, on rank 0, for every worker.
    pub fn connect(host: &str, port: u16, rank: usize, world: usize, timeout: Duration) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(ExtError::Invalid(format!("rank {rank} is not in a world of {world}")));
        }
        let h = c_string("host", host)?;
        let mut out = std::ptr::null_mut();
        // SAFETY: valid C string and out-pointer.
        ffi::check("TCPStore", unsafe { wt_store_new(h.as_ptr(), c_int::from(port), c_int::from(rank == 0), world as c_int, millis(timeout)?, &mut out) })
            .map_err(|e| collective(rank, world, &format!("rendezvous at {host}:{port}"), e))?;
        Ok(Self { ptr: out, rank })
    }

    /// Set `key` to `value`.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        let k = c_string("key", key)?;
        // SAFETY: live store, valid key and buffer.
        ffi::check("store set", unsafe { wt_store_set(self.ptr, k.as_ptr(), value.as_ptr(), value.len() as i64) })
    }

    /// The value of `key`, waiting (up to the store's timeout) until some rank sets it.
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let k = c_string("key", key)?;
        let (mut buf, mut n) = (std::ptr::null_mut(), 0i64);
        // SAFETY: live store, valid key and out-pointers.
        ffi::check("store get", unsafe { wt_store_get(self.ptr, k.as_ptr(), &mut buf, &mut n) })?;
        // SAFETY: on success `buf` holds `n` bytes malloc'd by the shim, freed once here.
        let v = unsafe { std::slice::from_raw_parts(buf, n as usize) }.to_vec();
        // SAFETY: as above.
        unsafe { ffi::wt_free(buf.cast()) };
        Ok(v)
    }

    /// Whether `key` is set, without waiting.
    pub fn check(&self, key: &str) -> Result<bool> {
        let k = c_string("key", key)?;
        let mut present = 0;
        // SAFETY: live store, valid key and out-pointer.
        ffi::check("store check", unsafe { wt_store_check(self.ptr, k.as_ptr(), &mut present) })?;
        Ok(present != 0)
    }

    /// Add `delta` to the counter `key` (0 when unset); the new value.
    pub fn add(&self, key: &str, delta: i64) -> Result<i64> {
        let k = c_string("key", key)?;
        let mut v = 0;
        // SAFETY: live store, valid key and out-pointer.
        ffi::check("store add", unsafe { wt_store_add(self.ptr, k.as_ptr(), delta, &mut v) })?;
        Ok(v)
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: allocated by wt_store_new, freed once.
        unsafe { wt_store_free(self.ptr) }
    }
}

/// Which process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Gloo: CPU tensors.
    Gloo,
    /// NCCL: CUDA tensors.
    Nccl,
}

impl Backend {
    /// Gloo for the CPU, NCCL for CUDA devices.
    pub fn for_device(device: Device) -> Self {
        match device {
            Device::Cuda(_) => Backend::Nccl,
            _ => Backend::Gloo,
        }
    }

    /// `gloo` / `nccl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }
}

/// Reduction of an all-reduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    /// Sum, then divide by the world size.
    Avg,
    Max,
    Min,
    Product,
}

/// A c10d process group of `world` processes.
pub struct ProcessGroup {
    ptr: *mut c_void,
    rank: usize,
    world: usize,
    backend: Backend,
    timeout: Duration,
}

// SAFETY: owned heap object; c10d backends may be driven from any one thread at a time.
unsafe impl Send for ProcessGroup {}

fn collective(rank: usize, world: usize, op: &str, e: ExtError) -> ExtError {
    let message = match e {
        ExtError::Torch { message, .. } => message,
        ExtError::Invalid(m) => m,
        ExtError::Collective { message, .. } => message,
    };
    ExtError::Collective { rank, world, op: op.to_string(), message }
}

impl ProcessGroup {
    /// A process group over `store`. For Gloo, `hostname` is the address this rank's transport
    /// listens on (`None`: the machine's hostname, as torch does); `timeout` bounds every
    /// collective.
    pub fn new(store: &Store, rank: usize, world: usize, backend: Backend, hostname: Option<&str>, timeout: Duration) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(ExtError::Invalid(format!("rank {rank} is not in a world of {world}")));
        }
        if backend == Backend::Nccl && !nccl_compiled() {
            return Err(ExtError::Invalid("NCCL is not compiled into this build (libtorch without CUDA, or NCCL/CUDA headers missing when whetstone-torch-ext was built); use Gloo".into()));
        }
        let host = hostname.map(|h| c_string("hostname", h)).transpose()?;
        let mut out = std::ptr::null_mut();
        let code = match backend {
            Backend::Gloo => 0,
            Backend::Nccl => 1,
        };
        // SAFETY: live store, valid strings and out-pointer.
        ffi::check("process group", unsafe { wt_group_new(store.ptr, rank as c_int, world as c_int, code, host.as_ref().map_or(std::ptr::null(), |h| h.as_ptr()), millis(timeout)?, &mut out) })
            .map_err(|e| collective(rank, world, &format!("creating the {} process group", backend.as_str()), e))?;
        Ok(Self { ptr: out, rank, world, backend, timeout })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of processes.
    pub fn world_size(&self) -> usize {
        self.world
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The timeout of every collective.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn err(&self, op: &str) -> impl Fn(ExtError) -> ExtError + '_ {
        let op = op.to_string();
        move |e| collective(self.rank, self.world, &op, e)
    }

    fn check_tensors(&self, op: &str, ts: &[Tensor]) -> Result<()> {
        for (i, t) in ts.iter().enumerate() {
            if !t.defined() {
                return Err(collective(self.rank, self.world, op, ExtError::Invalid(format!("tensor {i} is undefined"))));
            }
            if !t.is_contiguous() {
                return Err(collective(self.rank, self.world, op, ExtError::Invalid(format!("tensor {i} is not contiguous"))));
            }
            let ok = match (self.backend, t.device()) {
                (Backend::Nccl, Device::Cuda(_)) | (Backend::Gloo, _) => true,
                (Backend::Nccl, _) => false,
            };
            if !ok {
                return Err(collective(self.rank, self.world, op, ExtError::Invalid(format!("tensor {i} is on {:?}; NCCL reduces CUDA tensors", t.device()))));
            }
        }
        Ok(())
    }

    /// All-reduce each tensor in place (all are issued before any is awaited).
    pub fn all_reduce(&self, ts: &[Tensor], op: ReduceOp) -> Result<()> {
        let name = "all_reduce";
        self.check_tensors(name, ts)?;
        let code = match op {
            ReduceOp::Sum | ReduceOp::Avg => 0,
            ReduceOp::Max => 2,
            ReduceOp::Min => 3,
            ReduceOp::Product => 4,
        };
        let h = handles(ts);
        // SAFETY: live group; `h` holds live tensor handles for the call.
        ffi::check("all_reduce", unsafe { wt_allreduce(self.ptr, h.as_ptr(), h.len() as i64, code) }).map_err(self.err(name))?;
        if op == ReduceOp::Avg {
            let w = self.world as f64;
            tch::no_grad(|| -> Result<()> {
                for t in ts {
                    let _ = t.shallow_clone().f_div_scalar_(w).map_err(|e| ExtError::Invalid(e.to_string()))?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Overwrite each tensor with rank `root`'s.
    pub fn broadcast(&self, ts: &[Tensor], root: usize) -> Result<()> {
        let name = "broadcast";
        if root >= self.world {
            return Err(collective(self.rank, self.world, name, ExtError::Invalid(format!("root {root} is not a rank of {}", self.world))));
        }
        self.check_tensors(name, ts)?;
        let h = handles(ts);
        // SAFETY: live group and handles.
        ffi::check("broadcast", unsafe { wt_broadcast(self.ptr, h.as_ptr(), h.len() as i64, root as c_int) }).map_err(self.err(name))
    }

    /// `t` from every rank, in rank order (every rank passes a tensor of the same shape and kind).
    pub fn all_gather(&self, t: &Tensor) -> Result<Vec<Tensor>> {
        let name = "all_gather";
        self.check_tensors(name, std::slice::from_ref(t))?;
        let outs: Vec<Tensor> = (0..self.world).map(|_| t.empty_like()).collect();
        let h = handles(&outs);
        // SAFETY: live group and handles.
        ffi::check("all_gather", unsafe { wt_allgather(self.ptr, t.as_ptr() as *mut C_tensor, h.as_ptr(), h.len() as i64) }).map_err(self.err(name))?;
        Ok(outs)
    }

    /// Wait until every rank reaches the barrier.
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: live group.
        ffi::check("barrier", unsafe { wt_barrier(self.ptr) }).map_err(self.err("barrier"))
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: allocated by wt_group_new, freed once.
        unsafe { wt_group_free(self.ptr) }
    }
}
