//! c10d through the shim: two ranks (threads, each with its own store client and Gloo group)
//! over loopback. Gloo's headers come from Debian's libgloo-dev, older than the Gloo libtorch
//! was built with: exact collective results here are the check that the layouts still agree.
#![cfg(feature = "c10d")]

use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};
use whetstone_torch_ext::c10d::{Backend, ProcessGroup, ReduceOp, Store};
use whetstone_torch_ext::ExtError;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Run `f(rank, group, store)` on `world` threads joined into one Gloo group.
fn with_group<T: Send + 'static>(world: usize, timeout: Duration, f: impl Fn(usize, ProcessGroup, Store) -> T + Send + Sync + Clone + 'static) -> Vec<T> {
    let port = free_port();
    let handles: Vec<_> = (0..world)
        .map(|rank| {
            let f = f.clone();
            std::thread::spawn(move || {
                let store = Store::connect("127.0.0.1", port, rank, world, Duration::from_secs(30)).unwrap();
                let pg = ProcessGroup::new(&store, rank, world, Backend::Gloo, Some("127.0.0.1"), timeout).unwrap();
                f(rank, pg, store)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn collectives_give_exact_results() {
    let out = with_group(2, Duration::from_secs(30), |rank, pg, store| {
        assert_eq!((pg.rank(), pg.world_size(), pg.backend()), (rank, 2, Backend::Gloo));
        // all_reduce: sum, avg, max over several tensors of several kinds at once.
        let a = Tensor::from_slice(&[rank as f32 + 1.0; 4]);
        let b = Tensor::from_slice(&[rank as f64 * 10.0, -1.0]);
        pg.all_reduce(&[a.shallow_clone(), b.shallow_clone()], ReduceOp::Sum).unwrap();
        let avg = Tensor::from_slice(&[rank as f32 * 2.0 + 1.0]);
        pg.all_reduce(std::slice::from_ref(&avg), ReduceOp::Avg).unwrap();
        let mx = Tensor::from_slice(&[rank as i64, 5 - rank as i64]);
        pg.all_reduce(std::slice::from_ref(&mx), ReduceOp::Max).unwrap();
        // broadcast from rank 1; all_gather; barrier.
        let c = Tensor::from_slice(&[rank as f32; 3]).view([3, 1]);
        pg.broadcast(std::slice::from_ref(&c), 1).unwrap();
        let g = pg.all_gather(&Tensor::from_slice(&[rank as i64 * 7])).unwrap();
        pg.barrier().unwrap();
        // The store: set on one rank, read on the other (get waits for it).
        store.set(&format!("hello/{rank}"), format!("from {rank}").as_bytes()).unwrap();
        let other = store.get(&format!("hello/{}", 1 - rank)).unwrap();
        assert_eq!(store.add("count", 1).unwrap() >= 1, true);
        (Vec::<f32>::try_from(&a).unwrap(), Vec::<f64>::try_from(&b).unwrap(), avg.double_value(&[0]), Vec::<i64>::try_from(&mx).unwrap(), Vec::<f32>::try_from(&c.view([3])).unwrap(), g.iter().map(|t| t.int64_value(&[0])).collect::<Vec<_>>(), String::from_utf8(other).unwrap())
    });
    for (rank, (a, b, avg, mx, c, g, other)) in out.into_iter().enumerate() {
        assert_eq!(a, vec![3.0; 4]);
        assert_eq!(b, vec![10.0, -2.0]);
        assert_eq!(avg, 2.0);
        assert_eq!(mx, vec![1, 5]);
        assert_eq!(c, vec![1.0; 3]);
        assert_eq!(g, vec![0, 7]);
        assert_eq!(other, format!("from {}", 1 - rank));
    }
}

#[test]
fn a_missing_rank_is_an_error_within_the_timeout() {
    // Rank 1 joins and then never takes part; rank 0's all_reduce must fail within its
    // timeout with an error naming its rank and the operation, not hang.
    let out = with_group(2, Duration::from_millis(1500), |rank, pg, _store| {
        if rank == 1 {
            std::thread::sleep(Duration::from_secs(4));
            return None;
        }
        let t0 = Instant::now();
        let e = pg.all_reduce(&[Tensor::ones([8], (Kind::Float, Device::Cpu))], ReduceOp::Sum).unwrap_err();
        Some((e, t0.elapsed()))
    });
    let (e, took) = out.into_iter().flatten().next().unwrap();
    assert!(matches!(&e, ExtError::Collective { rank: 0, world: 2, op, .. } if op == "all_reduce"), "{e}");
    assert!(e.to_string().starts_with("rank 0 of 2: all_reduce failed: "), "{e}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[test]
fn bad_arguments_are_refused_before_libtorch() {
    let out = with_group(1, Duration::from_secs(10), |_rank, pg, _store| {
        let strided = Tensor::zeros([4, 4], (Kind::Float, Device::Cpu)).transpose(0, 1);
        let e1 = pg.all_reduce(&[strided], ReduceOp::Sum).unwrap_err().to_string();
        let e2 = pg.broadcast(&[Tensor::zeros([1], (Kind::Float, Device::Cpu))], 3).unwrap_err().to_string();
        (e1, e2)
    });
    assert!(out[0].0.contains("not contiguous"), "{}", out[0].0);
    assert!(out[0].1.contains("root 3 is not a rank of 1"), "{}", out[0].1);
    assert!(Store::connect("127.0.0.1", 1, 2, 2, Duration::from_secs(1)).is_err());
    // The NCCL path is compiled whenever the libtorch built against has CUDA.
    if let Some(lib) = std::env::var_os("LIBTORCH").map(std::path::PathBuf::from) {
        if lib.join("lib/libtorch_cuda.so").is_file() {
            assert!(whetstone_torch_ext::c10d::nccl_compiled(), "libtorch has CUDA but NCCL was not compiled in (see the build warning)");
        }
    }
    if !whetstone_torch_ext::c10d::nccl_compiled() {
        let store = Store::connect("127.0.0.1", free_port(), 0, 1, Duration::from_secs(10)).unwrap();
        let e = ProcessGroup::new(&store, 0, 1, Backend::Nccl, None, Duration::from_secs(1)).err().unwrap();
        assert!(e.to_string().contains("NCCL is not compiled"), "{e}");
    }
}

/// The NCCL smoke test of `scripts/gpu-check.sh`: a one-rank NCCL group on cuda:0 reduces,
/// broadcasts, gathers and meets at a barrier. Without CUDA (or without NCCL compiled in) it
/// says so and checks nothing: NCCL is then untested.
#[test]
fn nccl_smoke_on_one_gpu() {
    if !(tch::Cuda::is_available() && whetstone_torch_ext::c10d::nccl_compiled()) {
        eprintln!("nccl_smoke_on_one_gpu: skipped (CUDA available: {}, NCCL compiled: {})", tch::Cuda::is_available(), whetstone_torch_ext::c10d::nccl_compiled());
        return;
    }
    let store = Store::connect("127.0.0.1", free_port(), 0, 1, Duration::from_secs(30)).unwrap();
    let pg = ProcessGroup::new(&store, 0, 1, Backend::Nccl, None, Duration::from_secs(60)).unwrap();
    let dev = Device::Cuda(0);
    let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).to_device(dev);
    pg.all_reduce(std::slice::from_ref(&t), ReduceOp::Sum).unwrap();
    pg.all_reduce(std::slice::from_ref(&t), ReduceOp::Avg).unwrap();
    pg.broadcast(std::slice::from_ref(&t), 0).unwrap();
    let g = pg.all_gather(&t).unwrap();
    pg.barrier().unwrap();
    assert_eq!(Vec::<f32>::try_from(&t.to_device(Device::Cpu)).unwrap(), vec![1.0, 2.0, 3.0]);
    assert_eq!(g.len(), 1);
    // A CPU tensor is refused before NCCL sees it.
    let e = pg.all_reduce(&[Tensor::zeros([2], (Kind::Float, Device::Cpu))], ReduceOp::Sum).unwrap_err().to_string();
    assert!(e.contains("NCCL reduces CUDA tensors"), "{e}");
    eprintln!("nccl_smoke_on_one_gpu: passed on {:?}", dev);
}
