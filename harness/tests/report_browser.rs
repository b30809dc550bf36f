//! The HTML report looked at as a person would: a real run's `index.html` opened in headless Chromium, a
//! screenshot taken and checked (the expected size, not blank, no console message).
//!
//! Opt-in (`#[ignore]`: needs Debian's `chromium`); CI runs it with
//! `cargo test -p harness --test report_browser -- --ignored`. With `TMQ2MQTT_SCREENSHOT=FILE` the
//! screenshot is also copied there (that is how `docs/img/report.png` is made).

use std::path::{Path, PathBuf};
use std::process::Command;

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 2200;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chromium() -> &'static str {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name;
        }
    }
    panic!("headless Chromium not found: install it (apt-get install chromium), then rerun with --ignored");
}

#[test]
#[ignore = "opt-in: needs chromium (apt-get install chromium); run with -- --ignored"]
fn the_report_renders_in_a_real_browser() {
    let browser = chromium();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(workspace())
        .args(["run", "cut-mid-qos1", "seed-example", "--report"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index = dir.path().join("index.html");
    let shot = dir.path().join("shot.png");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--log-level=0",
            "--v=0",
        ])
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", index.display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{browser} failed: {log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (WIDTH, HEIGHT), "screenshot size");
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let background = pixels[0];
    let drawn = pixels.iter().filter(|p| p[..3] != background[..3]).count();
    let mut colours: Vec<[u8; 3]> = pixels.iter().map(|p| [p[0], p[1], p[2]]).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        drawn * 20 > pixels.len(),
        "only {drawn} of {} pixels differ from the background: blank page?",
        pixels.len()
    );
    assert!(colours.len() > 50, "{} colours: no charts drawn?", colours.len());
    if let Ok(to) = std::env::var("TMQ2MQTT_SCREENSHOT") {
        std::fs::copy(&shot, &to).unwrap();
    }
}
