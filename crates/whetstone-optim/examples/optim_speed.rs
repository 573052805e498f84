//! Quick step-time measurement (not a criterion bench): one optimiser step at MiniLM-L6 shapes
//! (≈22.7M parameters) and at 1M parameters over 200 tensors, float32 on the CPU.
//! `cargo run --release -p whetstone-optim --example optim_speed -- [threads] [iters]`;
//! `examples/optim_speed.py` measures torch.optim on the same shapes.

use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};
use whetstone_optim::*;

/// (name, shape) of MiniLM-L6 (BERT-style, hidden 384, FFN 1536, 6 layers).
fn minilm() -> Vec<(String, Vec<i64>)> {
    let mut v = vec![("embeddings.word_embeddings.weight".into(), vec![30522, 384]), ("embeddings.position_embeddings.weight".into(), vec![512, 384]), ("embeddings.token_type_embeddings.weight".into(), vec![2, 384])];
    v.push(("embeddings.LayerNorm.weight".into(), vec![384]));
    v.push(("embeddings.LayerNorm.bias".into(), vec![384]));
    for l in 0..6 {
        let p = format!("encoder.layer.{l}");
        for m in ["attention.q", "attention.k", "attention.v", "attention.o"] {
            v.push((format!("{p}.{m}.weight"), vec![384, 384]));
            v.push((format!("{p}.{m}.bias"), vec![384]));
        }
        v.push((format!("{p}.ffn.in.weight"), vec![1536, 384]));
        v.push((format!("{p}.ffn.in.bias"), vec![1536]));
        v.push((format!("{p}.ffn.out.weight"), vec![384, 1536]));
        v.push((format!("{p}.ffn.out.bias"), vec![384]));
        for n in ["attention.LayerNorm", "output.LayerNorm"] {
            v.push((format!("{p}.{n}.weight"), vec![384]));
            v.push((format!("{p}.{n}.bias"), vec![384]));
        }
    }
    v
}

/// 200 tensors, 5000 elements each (1M parameters), mixed shapes.
fn small() -> Vec<(String, Vec<i64>)> {
    (0..200).map(|i| (format!("t{i:03}.weight"), if i % 2 == 0 { vec![50, 100] } else { vec![5000] })).collect()
}

fn store(shapes: &[(String, Vec<i64>)]) -> nn::VarStore {
    let vs = nn::VarStore::new(Device::Cpu);
    for (n, s) in shapes {
        let _ = vs.root().var(&n.replace('.', "_"), s, nn::Init::Randn { mean: 0.0, stdev: 0.02 });
    }
    // Give every variable a gradient through autograd.
    let loss = vs.trainable_variables().iter().map(|v| (v * v.randn_like()).sum(Kind::Float)).fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b);
    loss.backward();
    vs
}

fn time(label: &str, n_params: usize, iters: usize, build: &dyn Fn(&nn::VarStore) -> Box<dyn Optimizer>, shapes: &[(String, Vec<i64>)]) {
    let vs = store(shapes);
    let mut opt = build(&vs);
    // flat optimisers zeroed nothing: gradients were defined before and copied into the buffer.
    for _ in 0..3 {
        opt.step(1e-4).unwrap();
    }
    let mut ts = Vec::new();
    for _ in 0..iters {
        let t0 = Instant::now();
        opt.step(1e-4).unwrap();
        ts.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("{label:<40} {n_params:>9} params  median {:8.3} ms  min {:8.3} ms", ts[ts.len() / 2], ts[0]);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: i32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let iters: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    tch::set_num_threads(threads);
    println!("threads = {threads}");
    for (set, shapes) in [("minilm", minilm()), ("200x5k", small())] {
        let n: i64 = shapes.iter().map(|(_, s)| s.iter().product::<i64>()).sum();
        let n = n as usize;
        let p = |vs: &nn::VarStore| named_params(vs, 0.01, NO_DECAY);
        time(&format!("{set} adamw flat+fused"), n, iters, &|vs| Box::new(AdamW::new(p(vs), AdamWConfig::default()).unwrap()), &shapes);
        time(&format!("{set} adamw flat chain (tensor ops)"), n, iters, &|vs| Box::new(ChainOptimizer::new(p(vs), AdamWConfig::default().chain(), true).unwrap()), &shapes);
        time(&format!("{set} adamw per-tensor chain"), n, iters, &|vs| Box::new(AdamW::with_layout(p(vs), AdamWConfig::default(), false).unwrap()), &shapes);
        time(&format!("{set} adam flat+fused"), n, iters, &|vs| Box::new(Adam::new(p(vs), AdamConfig::default()).unwrap()), &shapes);
        time(&format!("{set} sgd(m=0.9) flat+fused"), n, iters, &|vs| Box::new(Sgd::new(p(vs), SgdConfig::default()).unwrap()), &shapes);
        time(&format!("{set} sgd(m=0.9) per-tensor chain"), n, iters, &|vs| Box::new(Sgd::with_layout(p(vs), SgdConfig::default(), false).unwrap()), &shapes);
    }
}
