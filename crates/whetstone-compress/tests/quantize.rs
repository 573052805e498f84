//! Dynamic int8: close to f32 and smaller.

mod common;

use common::*;
use whetstone_compress::{QuantizedClassifier, QuantizedLinear};
use whetstone_models::TextClassifier;
use tch::{Device, Kind, Tensor};

#[test]
fn quantized_linear_is_close_to_f32() {
    let _g = serial();
    tch::manual_seed(1);
    let w = Tensor::randn([24, 32], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([24], (Kind::Float, Device::Cpu));
    let x = Tensor::randn([3, 5, 32], (Kind::Float, Device::Cpu));
    let q = QuantizedLinear::new(&w, Some(&b)).unwrap();
    let y = q.forward(&x).unwrap();
    let want = x.linear(&w, Some(&b));
    assert_eq!(y.size(), vec![3, 5, 24]);
    let rel = max_abs_diff(&y, &want) / want.abs().max().double_value(&[]);
    assert!(rel < 0.03, "relative error {rel}");
    // One byte per weight, f32 scales and bias.
    assert_eq!(q.size_bytes(), 24 * 32 + 4 * (24 + 24));
}

#[test]
fn int8_classifier_logits_stay_close_and_the_model_is_smaller() {
    let _g = serial();
    for pre_norm in [false, true] {
        let mut cfg = config(2, 32, 4, 64);
        cfg.encoder.pre_norm = pre_norm;
        let (vs, model, _) = tiny_with(2, cfg);
        let int8 = QuantizedClassifier::new(&model).unwrap();
        let b = batch(3, 6);
        let f32_logits = tch::no_grad(|| model.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
        let q_logits = int8.forward_t(&b.input_ids, &b.attention_mask, false).unwrap();
        let diff = max_abs_diff(&f32_logits, &q_logits);
        let scale = f32_logits.abs().max().double_value(&[]);
        println!("pre_norm {pre_norm}: max |logit diff| = {diff:.5} (max |logit| {scale:.3})");
        assert!(diff < 0.05 * scale.max(1.0), "int8 logits differ by {diff}");
        let fp32_bytes = 4 * whetstone_models::count_parameters(&vs) as usize;
        assert!((int8.size_bytes() as f64) < 0.6 * fp32_bytes as f64, "{} vs {fp32_bytes} bytes", int8.size_bytes());
    }
}

/// The layer really computes in int8: its stored weight is `Int8`, per output channel the
/// largest weight maps to ±127 and `q · scale` is within half a step of `w`, and the output is
/// exactly the integer product of the quantised activations and weights, rescaled; so it
/// differs from the f32 product (a layer that kept f32 weights would match it to rounding).
#[test]
fn quantized_linear_holds_int8_weights_and_computes_an_integer_product() {
    let _g = serial();
    tch::manual_seed(4);
    let w = Tensor::randn([24, 32], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([24], (Kind::Float, Device::Cpu));
    let x = Tensor::randn([7, 32], (Kind::Float, Device::Cpu));
    let q = QuantizedLinear::new(&w, Some(&b)).unwrap();
    // The scheme by hand: per-output-channel weight scales, per-row activation scales.
    let sw = w.abs().amax([1].as_slice(), true) / 127.0;
    let qw = (&w / &sw).round().clamp(-127, 127);
    let sx = x.abs().amax([1].as_slice(), true) / 127.0;
    let qx = (&x / &sx).round().clamp(-127, 127);
    let exact = (qx.to_kind(Kind::Double).matmul(&qw.to_kind(Kind::Double).tr()) * sx.to_kind(Kind::Double) * sw.to_kind(Kind::Double).tr()) + b.to_kind(Kind::Double);
    let y = q.forward(&x).unwrap().to_kind(Kind::Double);
    let scale = exact.abs().max().double_value(&[]);
    assert!(max_abs_diff(&y, &exact) < 1e-5 * scale, "int8 layer vs the integer product by hand: {}", max_abs_diff(&y, &exact));
    let fp = x.linear(&w, Some(&b)).to_kind(Kind::Double);
    let d = max_abs_diff(&y, &fp);
    assert!(d > 1e-4 * scale && d < 0.03 * scale, "int8 vs f32: max diff {d} (max |y| {scale})");
}

/// The int8 classifier's encoder Linear weights are `Int8` tensors (with f32 scales), nothing
/// else of the encoder's Linear layers is kept in f32, its checkpoint is less than half the
/// f32 one's size, and its logits differ slightly from the f32 model's.
#[test]
fn int8_classifier_stores_int8_weights_and_a_smaller_checkpoint() {
    let _g = serial();
    let (vs, model, _) = tiny_with(5, config(2, 32, 4, 64));
    let int8 = QuantizedClassifier::new(&model).unwrap();
    let named = int8.named_tensors();
    let f32_named: std::collections::HashMap<String, Tensor> = model.named_parameters().into_iter().collect();
    let mut int8_weights = 0;
    for (name, t) in &named {
        if let Some(prefix) = name.strip_suffix(".weight_int8") {
            int8_weights += 1;
            assert_eq!(t.kind(), Kind::Int8, "{name}");
            let w = &f32_named[&format!("{prefix}.weight")];
            assert_eq!(t.size(), vec![w.size()[1], w.size()[0]], "{name} is stored [in, out]");
            let scale = named.iter().find(|(n, _)| *n == format!("{prefix}.scale")).map(|(_, s)| s).unwrap_or_else(|| panic!("{prefix}.scale"));
            assert_eq!(scale.kind(), Kind::Float);
            let qf = t.to_kind(Kind::Float);
            // Symmetric per output channel: the largest |q| of every channel is 127.
            let peak = qf.abs().amax([0].as_slice(), false);
            assert!(peak.eq(127.0).all().int64_value(&[]) == 1, "{name}: per-channel peaks {peak:?}");
            // Dequantised, within half a quantisation step of the f32 weight.
            let err = (qf.tr() * scale.unsqueeze(1) - w).abs().amax([1].as_slice(), false);
            assert!(err.le_tensor(&(scale * 0.5 + 1e-7)).all().int64_value(&[]) == 1, "{name} is not w quantised");
        } else {
            assert!(!name.contains("encoder.layer.") || name.ends_with(".bias") || name.ends_with(".scale") || name.contains("LayerNorm"), "{name} is kept in f32");
        }
    }
    assert_eq!(int8_weights, 2 * 6, "q, k, v, attention output, ffn in and out of 2 layers");

    let dir = tempfile::tempdir().unwrap();
    let (p8, p32) = (dir.path().join("int8.safetensors"), dir.path().join("f32.safetensors"));
    whetstone_models::write_safetensors_atomic(&named, &p8).unwrap();
    whetstone_models::save_varstore(&vs, &p32).unwrap();
    let (b8, b32) = (std::fs::metadata(&p8).unwrap().len(), std::fs::metadata(&p32).unwrap().len());
    // 16 384 Linear weights in 2 layers at 1 byte instead of 4: 48 KB less, minus the f32
    // scales (1.8 KB) and the longer names in the header.
    assert!(b8 + 40_000 < b32, "int8 checkpoint {b8} bytes vs f32 {b32}");
    assert!((b8 as f64) < 0.5 * b32 as f64, "int8 checkpoint {b8} bytes vs f32 {b32}");

    let b = batch(6, 6);
    let f32_logits = tch::no_grad(|| model.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
    let q_logits = int8.forward_t(&b.input_ids, &b.attention_mask, false).unwrap();
    let diff = max_abs_diff(&f32_logits, &q_logits);
    let scale = f32_logits.abs().max().double_value(&[]);
    assert!(diff > 1e-5 * scale && diff < 0.05 * scale.max(1.0), "int8 vs f32 logits: max diff {diff} (max |logit| {scale})");
}
