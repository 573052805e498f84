//! Autocast regions on CPU: the cast happens, sensitive ops stay float32, guards nest and
//! restore, state is per thread, bad arguments are errors.

use tch::{Device, Kind, Tensor};
use whetstone_torch_ext::autocast::{autocast, state, with_autocast, DeviceType};

fn ones(shape: &[i64]) -> Tensor {
    Tensor::ones(shape, (Kind::Float, Device::Cpu))
}

#[test]
fn bf16_region_casts_matmul_and_keeps_sensitive_ops_in_fp32() {
    let a = ones(&[8, 8]);
    let before = state(DeviceType::Cpu).unwrap();
    assert!(!before.enabled);
    {
        let _g = autocast(Device::Cpu, Some(Kind::BFloat16)).unwrap();
        assert!(state(DeviceType::Cpu).unwrap().enabled);
        let y = a.matmul(&a);
        assert_eq!(y.kind(), Kind::BFloat16);
        // libtorch's CPU autocast runs losses in float32 whatever their input (its fp32 list),
        // and leaves ops outside its lists (layer norm here) in their inputs' dtype.
        let target = Tensor::zeros([8], (Kind::Int64, Device::Cpu));
        assert_eq!(y.cross_entropy_loss::<Tensor>(&target, None, tch::Reduction::Mean, -100, 0.0).kind(), Kind::Float);
        assert_eq!(y.mse_loss(&y, tch::Reduction::Mean).kind(), Kind::Float);
        assert_eq!(a.layer_norm([8], None::<Tensor>, None::<Tensor>, 1e-5, false).kind(), Kind::Float);
        let w = ones(&[4, 8]).set_requires_grad(true);
        let loss = a.linear(&w, None::<Tensor>).sum(Kind::Float);
        drop(_g);
        // Backward outside the region: the gradient of a float32 leaf is float32.
        loss.backward();
        assert_eq!(w.grad().kind(), Kind::Float);
    }
    assert_eq!(state(DeviceType::Cpu).unwrap(), before);
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
}

#[test]
fn regions_nest_and_restore_in_order() {
    let a = ones(&[4, 4]);
    let outer = autocast(Device::Cpu, Some(Kind::BFloat16)).unwrap();
    {
        let island = autocast(Device::Cpu, None).unwrap();
        assert!(island.previous().enabled);
        assert_eq!(a.matmul(&a).kind(), Kind::Float);
    }
    assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
    drop(outer);
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
    assert!(!state(DeviceType::Cpu).unwrap().enabled);
}

#[test]
fn state_is_per_thread() {
    let _g = autocast(Device::Cpu, Some(Kind::BFloat16)).unwrap();
    let other = std::thread::spawn(|| {
        let a = ones(&[4, 4]);
        (state(DeviceType::Cpu).unwrap().enabled, a.matmul(&a).kind())
    })
    .join()
    .unwrap();
    assert_eq!(other, (false, Kind::Float));
}

#[test]
fn closure_form_and_bad_arguments() {
    let a = ones(&[2, 2]);
    let k = with_autocast(Device::Cpu, Some(Kind::BFloat16), || a.matmul(&a).kind()).unwrap();
    assert_eq!(k, Kind::BFloat16);
    assert!(!state(DeviceType::Cpu).unwrap().enabled);
    let e = autocast(Device::Cpu, Some(Kind::Int64)).unwrap_err().to_string();
    assert!(e.contains("BFloat16 or Half"), "{e}");
    let e = autocast(Device::Mps, Some(Kind::BFloat16)).unwrap_err().to_string();
    assert!(e.contains("CPU and CUDA"), "{e}");
    assert!(!state(DeviceType::Cpu).unwrap().enabled);
}

#[test]
fn cached_weight_casts_do_not_go_stale_across_regions() {
    // Inside a region the bf16 cast of a leaf weight is cached; the outermost region's end must
    // clear it, or a weight changed between regions would be served stale.
    let w = ones(&[4, 4]).set_requires_grad(true);
    let x = ones(&[1, 4]);
    let first = with_autocast(Device::Cpu, Some(Kind::BFloat16), || x.matmul(&w).to_kind(Kind::Float)).unwrap();
    tch::no_grad(|| {
        let _ = w.shallow_clone().fill_(2.0);
    });
    let second = with_autocast(Device::Cpu, Some(Kind::BFloat16), || x.matmul(&w).to_kind(Kind::Float)).unwrap();
    assert_eq!(first.double_value(&[0, 0]), 4.0);
    assert_eq!(second.double_value(&[0, 0]), 8.0);
}
