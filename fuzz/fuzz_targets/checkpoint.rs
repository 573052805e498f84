#![no_main]
//! `cargo xtask fuzz` target: see [`whetstone_fuzz::checkpoint`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| whetstone_fuzz::checkpoint(data));
