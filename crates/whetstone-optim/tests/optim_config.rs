//! `OptimConfig::validate`: every algorithm's defaults pass without any parameters, and bad
//! values (non-finite ones included) are refused with the recipe key named.

use whetstone_optim::OptimConfig;

fn config(text: &str) -> OptimConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn every_algorithm_validates_with_its_defaults() {
    for kind in ["sgd", "adam", "adamw", "nadam", "radam", "adagrad", "rmsprop", "adamax", "adabelief", "lion", "lamb", "adafactor", "schedulefree-adamw", "adaptive"] {
        config(&format!("kind = \"{kind}\"")).validate().unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

#[test]
fn bad_values_name_their_key() {
    for (text, key) in [
        ("kind = \"adamw\"\nlr = nan", "optim.lr"),
        ("kind = \"adamw\"\nlr = inf", "optim.lr"),
        ("kind = \"adamw\"\nweight_decay = nan", "optim.weight_decay"),
        ("kind = \"adamw\"\nweight_decay = -inf", "optim.weight_decay"),
        ("kind = \"adamw\"\nlayer_decay = nan", "optim.layer_decay"),
        ("kind = \"adamw\"\ngroups = [{ pattern = \"x\", lr_scale = nan }]", "optim.groups[0].lr_scale"),
        ("kind = \"adamw\"\ngroups = [{ pattern = \"x\", lr_scale = inf }]", "optim.groups[0].lr_scale"),
        ("kind = \"adamw\"\ngroups = [{ pattern = \"x\", lr = inf }]", "optim.groups[0].lr"),
        ("kind = \"adamw\"\ngroups = [{ pattern = \"x\", weight_decay = inf }]", "optim.groups[0].weight_decay"),
        ("kind = \"adamw\"\ngroups = [{ pattern = \"x\", weight_decay = -0.1 }]", "optim.groups[0].weight_decay"),
        ("kind = \"adamw\"\ngroups = [{ pattern = \"x\", betas = [0.9, 1.5] }]", "optim.groups[0].betas"),
        ("kind = \"sgd\"\ngroups = [{ pattern = \"x\", betas = [0.9, 0.99] }]", "optim.groups[0].betas"),
        ("kind = \"adamw\"\nlookahead = { k = 0, alpha = 0.5 }", "optim.lookahead"),
        ("kind = \"adamw\"\nbetas = [0.9, 1.0]", "betas"),
        ("kind = \"adamw\"\neps = nan", "eps"),
    ] {
        let e = config(text).validate().unwrap_err().to_string();
        assert!(e.contains(key), "{text}: {e}");
    }
}

/// `kernel = "torch-fused"` with an algorithm libtorch has no fused kernel for is refused by
/// validate and by build, naming `optim.kernel` and the algorithm, before any parameter is
/// touched; SGD / Adam / AdamW accept it, also under lookahead, skip_nonfinite and groups.
#[test]
fn torch_fused_kernel_is_only_for_sgd_adam_adamw() {
    use whetstone_optim::Kernel;
    for kind in ["nadam", "radam", "adagrad", "rmsprop", "adamax", "adabelief", "lion", "lamb", "adafactor", "schedulefree-adamw", "adaptive"] {
        let cfg = config(&format!("kind = \"{kind}\"\nkernel = \"torch-fused\""));
        assert_eq!(cfg.kernel, Kernel::TorchFused);
        for e in [cfg.validate().unwrap_err(), cfg.algorithm.check_kernel(Kernel::TorchFused).unwrap_err()] {
            let e = e.to_string();
            assert!(e.contains("optim.kernel") && e.contains(&format!("\"{kind}\"")), "{kind}: {e}");
        }
        // build refuses before flattening anything (flat buffers would give the variable a gradient).
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let w = vs.root().zeros("w", &[3]);
        let e = cfg.build(&vs).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("optim.kernel") && e.contains(kind), "{kind}: {e}");
        assert!(!w.grad().defined(), "{kind}: build touched the parameters before refusing");
        assert!(cfg.algorithm.build_with_kernel(Vec::new(), true, Kernel::TorchFused).is_err());
        assert_eq!(cfg.algorithm.name(), kind);
        // The same algorithm with the whetstone kernel is fine.
        config(&format!("kind = \"{kind}\"\nkernel = \"whetstone\"")).validate().unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
    for kind in ["sgd", "adam", "adamw"] {
        for extra in ["", "lookahead = { k = 5, alpha = 0.5 }", "skip_nonfinite = true", "groups = [{ pattern = \"classifier\", lr_scale = 10.0 }]", "flat = false", "momentum = 0.0"] {
            if extra.starts_with("momentum") && kind != "sgd" {
                continue;
            }
            let cfg = config(&format!("kind = \"{kind}\"\nkernel = \"torch-fused\"\n{extra}"));
            cfg.validate().unwrap_or_else(|e| panic!("{kind} {extra}: {e}"));
            let vs = tch::nn::VarStore::new(tch::Device::Cpu);
            let _ = vs.root().zeros("classifier", &[3]);
            let _ = vs.root().zeros("w", &[2, 2]);
            let mut opt = cfg.build(&vs).unwrap_or_else(|e| panic!("{kind} {extra}: {e}"));
            for v in vs.trainable_variables() {
                (v.sum(tch::Kind::Float) * 2.0).backward();
            }
            opt.step(0.1).unwrap_or_else(|e| panic!("{kind} {extra}: {e}"));
            assert_eq!(opt.state().step, 1);
        }
    }
}

#[test]
fn kernel_names_round_trip_and_unknown_ones_are_refused() {
    use whetstone_optim::{Kernel, OptimConfig};
    assert_eq!(OptimConfig::default().kernel, Kernel::default());
    let cfg = config("kind = \"adamw\"\nkernel = \"torch-fused\"");
    let text = toml::to_string(&cfg).unwrap();
    assert!(text.contains("kernel = \"torch-fused\""), "{text}");
    assert_eq!(toml::from_str::<OptimConfig>(&text).unwrap(), cfg);
    assert_eq!(Kernel::TorchFused.to_string(), "torch-fused");
    assert_eq!(Kernel::Whetstone.name(), "whetstone");
    let e = toml::from_str::<OptimConfig>("kind = \"adamw\"\nkernel = \"torch\"").unwrap_err().to_string();
    assert!(e.contains("torch-fused") && e.contains("whetstone"), "{e}");
}
