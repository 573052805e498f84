#![no_main]
//! `cargo xtask fuzz` target: see [`whetstone_fuzz::recipe`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| whetstone_fuzz::recipe(data));
