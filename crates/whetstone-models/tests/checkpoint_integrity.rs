//! The safetensors checkpoint loader on hostile input: weights holding NaN or infinity are
//! refused naming the tensor and the file, and truncated, bit-flipped or oversized files are a
//! clean error, never a panic or an allocation the header asks for.

use proptest::prelude::*;
use std::path::Path;
use tch::{nn, nn::VarStore, Device, Kind, Tensor};
use whetstone_models::{load_varstore, read_safetensors_bytes, safetensors_bytes};

/// A store with two float variables and the bytes of a file holding them.
fn store() -> VarStore {
    let vs = VarStore::new(Device::Cpu);
    let layer = vs.root() / "layer";
    let _ = layer.var("weight", &[4, 3], nn::Init::Const(0.5));
    let _ = layer.var("bias", &[4], nn::Init::Const(0.25));
    vs
}

fn named(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn valid_bytes() -> Vec<u8> {
    safetensors_bytes(&named(&store()), None).unwrap()
}

fn with_value(name: &str, value: f64) -> Vec<u8> {
    let vs = store();
    let mut tensors = named(&vs);
    for (n, t) in tensors.iter_mut() {
        if n == name {
            *t = t.detach().copy();
            let _ = t.narrow(0, 1, 1).fill_(value);
        }
    }
    safetensors_bytes(&tensors, None).unwrap()
}

#[test]
fn weights_with_nan_or_infinity_are_refused_naming_tensor_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    for (value, tensor) in [(f64::NAN, "layer.bias"), (f64::INFINITY, "layer.weight"), (f64::NEG_INFINITY, "layer.bias")] {
        std::fs::write(&path, with_value(tensor, value)).unwrap();
        let mut vs = store();
        let err = load_varstore(&mut vs, &path).unwrap_err().to_string();
        assert!(err.contains(&format!("`{tensor}`")) && err.contains("NaN or infinite") && err.contains(&path.display().to_string()), "{err}");
        // Nothing was copied: the store keeps its own finite weights.
        for (n, t) in named(&vs) {
            assert!(t.isfinite().all().int64_value(&[]) == 1, "{n} was overwritten");
        }
    }
    // The same file with finite values loads.
    std::fs::write(&path, with_value("layer.bias", 3.0)).unwrap();
    let mut vs = store();
    load_varstore(&mut vs, &path).unwrap();
    let bias = vs.variables()["layer.bias"].copy();
    assert_eq!(Vec::<f32>::try_from(bias).unwrap(), vec![0.25, 3.0, 0.25, 0.25]);
}

#[test]
fn a_header_length_of_two_to_the_sixty_is_a_clean_error() {
    let mut bytes = valid_bytes();
    bytes[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let err = read_safetensors_bytes(&bytes, Path::new("huge.safetensors")).unwrap_err().to_string();
    assert!(err.contains("huge.safetensors") && err.contains("header length 1152921504606846976"), "{err}");
    // The same through a file and load_varstore.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let err = load_varstore(&mut store(), &path).unwrap_err().to_string();
    assert!(err.contains("header length") && err.contains("model.safetensors"), "{err}");
    for short in [&b""[..], b"\x01\x00\x00", b"\x00\x00\x00\x00\x00\x00\x00\x00"] {
        assert!(read_safetensors_bytes(short, Path::new("s")).is_err());
    }
}

#[test]
fn shapes_that_overflow_or_do_not_fit_their_bytes_are_errors() {
    let header = |shape: &str, end: usize| {
        let h = format!("{{\"t\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":[0,{end}]}}}}");
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(h.as_bytes());
        b.extend(std::iter::repeat_n(0u8, end));
        b
    };
    for (shape, end) in [("[4611686018427387904,4]", 0), ("[18446744073709551615]", 4), ("[0,18446744073709551615]", 0), ("[3]", 8), ("[2,2]", 16)] {
        let r = read_safetensors_bytes(&header(shape, end), Path::new("x"));
        if shape == "[2,2]" {
            assert_eq!(r.unwrap()[0].1.size(), [2, 2]);
        } else {
            assert!(r.is_err(), "{shape} {end}");
        }
    }
}

fn load_bytes(bytes: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("m.safetensors");
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    load_varstore(&mut store(), &path).map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any bytes at all: Ok or an error.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = read_safetensors_bytes(&bytes, Path::new("fuzz"));
    }

    /// A valid file cut short anywhere is an error.
    #[test]
    fn truncated_files_are_errors(cut in 0usize..10_000) {
        let bytes = valid_bytes();
        let cut = cut % bytes.len();
        prop_assert!(read_safetensors_bytes(&bytes[..cut], Path::new("t")).is_err());
    }

    /// Flipped bits anywhere (header, length, data): Ok or an error, through the whole loader.
    #[test]
    fn bit_flips_never_panic(flips in proptest::collection::vec((0usize..10_000, 0u8..8), 1..6)) {
        let mut bytes = valid_bytes();
        let n = bytes.len();
        for (at, bit) in flips {
            bytes[at % n] ^= 1 << bit;
        }
        let _ = read_safetensors_bytes(&bytes, Path::new("f"));
        let _ = load_bytes(&bytes);
    }

    /// Any 8-byte header length other than the true one is an error, checked before allocating.
    #[test]
    fn oversized_or_wrong_header_lengths_are_errors(len in prop_oneof![any::<u64>(), Just(1u64 << 60), Just(u64::MAX), 0u64..4096]) {
        let mut bytes = valid_bytes();
        let truth = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        prop_assume!(len != truth);
        bytes[..8].copy_from_slice(&len.to_le_bytes());
        prop_assert!(read_safetensors_bytes(&bytes, Path::new("o")).is_err());
    }

    /// Headers with arbitrary dtypes, shapes and offsets (well-formed JSON): Ok or an error.
    #[test]
    fn arbitrary_tensor_headers_never_panic(
        dtype in prop_oneof![Just("F32"), Just("F16"), Just("BF16"), Just("F64"), Just("I64"), Just("I32"), Just("I16"), Just("I8"), Just("U8"), Just("BOOL"), Just("U64"), Just("F8"), Just("X")],
        shape in proptest::collection::vec(prop_oneof![0usize..5, any::<usize>()], 0..4),
        start in prop_oneof![0usize..64, any::<usize>()],
        end in prop_oneof![0usize..64, any::<usize>()],
        data in 0usize..64,
    ) {
        let h = format!("{{\"__metadata__\":{{\"k\":\"v\"}},\"w\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{start},{end}]}}}}");
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(h.as_bytes());
        b.extend(std::iter::repeat_n(7u8, data));
        if let Ok(t) = read_safetensors_bytes(&b, Path::new("h")) {
            // What loads has exactly the bytes its shape says.
            prop_assert_eq!(t.len(), 1);
            prop_assert_eq!(t[0].1.numel() * t[0].1.kind().elt_size_in_bytes(), end - start);
            let _ = t[0].1.to_kind(Kind::Float).sum(Kind::Float);
        }
    }
}
