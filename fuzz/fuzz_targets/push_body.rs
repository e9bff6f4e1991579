#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| starfish::fuzzing::push_body(data));
