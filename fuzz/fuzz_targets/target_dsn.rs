//! Fuzzes `TargetDsn::parse` (including its topic templates): never panics; an error is one line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tmq2mqtt::TargetDsn;

fuzz_target!(|input: &str| {
    match TargetDsn::parse(input) {
        Ok(dsn) => {
            let shown = format!("{dsn} {dsn:?}");
            assert!(!shown.is_empty());
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
    }
});
