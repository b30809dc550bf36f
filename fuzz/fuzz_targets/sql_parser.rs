//! Fuzzes the stand-in's SQL lexer and parser: any text gives statements or a `TdError`, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|sql: &str| {
    let _ = simulator::tdengine::sql::parse(sql);
});
