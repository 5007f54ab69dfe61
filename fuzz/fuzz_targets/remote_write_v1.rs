#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vigil_ingest::fuzzing::remote_write_v1(data));
