//! Fuzzes the parsing of the stand-in's `/rest/tmq` requests (`tmq::proto::parse`): any text gives an
//! envelope or an error string, never a panic; a parsed envelope's error is one line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use simulator::tdengine::tmq::proto;

fuzz_target!(|text: &str| {
    if let Ok(env) = proto::parse(text) {
        if let Err(e) = env.request {
            assert!(!e.contains('\n'), "{e}");
        }
    }
});
