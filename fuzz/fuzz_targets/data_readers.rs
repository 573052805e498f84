#![no_main]
//! `cargo xtask fuzz` target: see [`whetstone_fuzz::data_readers`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| whetstone_fuzz::data_readers(data));
