//! Fuzzes `SourceDsn::parse`: never panics; an error is one line; an accepted DSN renders.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tmq2mqtt::SourceDsn;

fuzz_target!(|input: &str| {
    match SourceDsn::parse(input) {
        Ok(dsn) => {
            let shown = format!("{dsn} {dsn:?}");
            assert!(!shown.is_empty());
            let _ = dsn.to_taos_dsn();
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
    }
});
