#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfprocessor::fuzzing::trace_file(data);
});
