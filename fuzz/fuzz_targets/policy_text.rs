#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfprocessor::fuzzing::policy_text(data);
});
