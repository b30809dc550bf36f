//! Generates one `#[test]` per scenario file, so that `cargo test -p harness` names a failing scenario.
//! Files in `scenarios/broken/` become `#[ignore]`d tests named `broken_…` (known failures, listed as ignored
//! rather than silently left out; `cargo test -p harness --test scenarios -- --ignored` runs them). An
//! unreadable scenarios folder is a build error, not zero tests.

use std::fmt::Write as _;
use std::path::Path;

fn stems(dir: &Path) -> Vec<String> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let rd = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read scenarios folder {}: {e}", dir.display()));
    let mut names: Vec<String> = rd
        .map(|e| {
            e.unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

fn ident(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn main() {
    // Read at run time, not `env!`: a target directory copied from another checkout reuses this script.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("../scenarios");
    let mut out = String::new();
    for name in stems(&dir) {
        let id = ident(&name);
        let _ = writeln!(out, "#[test]\nfn {id}() {{\n    run_scenario({name:?});\n}}\n");
    }
    for name in stems(&dir.join("broken")) {
        let id = ident(&name);
        let file = format!("broken/{name}");
        let _ = writeln!(
            out,
            "#[test]\n#[ignore = \"known failure: scenarios/{file}.toml\"]\nfn broken_{id}() {{\n    run_scenario({file:?});\n}}\n"
        );
    }
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("scenario_tests.rs"), out).expect("write tests");
}
