//! Keeps the DSNs' passwords out of everything the binary prints.
//!
//! The DSN types never show a password, but dependencies log what they send: the official `taos` client
//! writes its connect request verbatim at `trace` (`"password":"…"`), and any library may print a value in
//! `Debug` form. Their events are not ours to change, so the redaction sits where every line passes on its
//! way out — the log writer ([`RedactingWriter`], any level, target and format) — and the few lines the
//! binary prints itself (errors, `check`'s report) go through [`Secrets::redact`] too.
//!
//! A password is found in every form an event may carry it, however deeply escaped: an event may print a
//! request as JSON, inside the `Debug` form of its bytes, inside a JSON log line — each layer adds
//! backslashes. So the match is not against a list of forms but byte by byte: before each of the
//! password's bytes any run of backslashes may stand, and the byte may be written as itself, as `xHH` after a
//! backslash (`Debug` of bytes), as `%HH` (percent-encoding, as typed in a DSN or re-encoded by a client),
//! as `n`/`r`/`t`/`0` after a backslash for those control bytes, and a whole character as `u{…}` (`Debug`
//! of a string) or `uHHHH` (JSON). Each occurrence becomes `***`. A very short password makes logs harder
//! to read (every occurrence of its text is masked); it never makes them leak.

use std::{borrow::Cow, io, sync::Arc};

use tracing_subscriber::fmt::MakeWriter;

/// What replaces a password.
pub const MASK: &str = "***";

/// The passwords to mask.
#[derive(Clone, Default)]
pub struct Secrets {
    passwords: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({})", self.passwords.len())
    }
}

impl Secrets {
    /// The secrets of these passwords (empty ones are ignored).
    pub fn new<'a>(passwords: impl IntoIterator<Item = &'a str>) -> Secrets {
        let mut s = Secrets::default();
        for p in passwords {
            s.add(p);
        }
        s
    }

    fn add(&mut self, password: &str) {
        if !password.is_empty() && !self.passwords.iter().any(|p| p == password) {
            self.passwords.push(password.to_string());
        }
    }

    /// The passwords of both DSNs of a configuration.
    pub fn of(config: &crate::BridgeConfig) -> Secrets {
        Secrets::new(
            [&config.source.password, &config.target.password]
                .into_iter()
                .filter_map(|p| p.as_deref()),
        )
    }

    /// Adds the password of a raw DSN (`scheme://user:PASSWORD@host…`), decoded where it decodes — for a
    /// DSN that failed to parse, whose password the configuration does not hold.
    pub fn with_typed(mut self, dsn: &str) -> Secrets {
        if let Some(typed) = typed_password(dsn) {
            match percent_encoding::percent_decode_str(typed).decode_utf8() {
                Ok(decoded) => self.add(&decoded),
                Err(_) => self.add(typed),
            }
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.passwords.is_empty()
    }

    /// `text` with every occurrence of every password, in any escaped form, replaced by [`MASK`].
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.passwords.is_empty() {
            return Cow::Borrowed(text);
        }
        let bytes = text.as_bytes();
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            let end = self
                .passwords
                .iter()
                .filter_map(|p| match_at(bytes, i, p.as_bytes()))
                .max();
            match end {
                Some(end) => {
                    let o = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                    o.extend_from_slice(&bytes[copied..i]);
                    o.extend_from_slice(MASK.as_bytes());
                    copied = end;
                    i = end;
                }
                None => i += 1,
            }
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut o) => {
                o.extend_from_slice(&bytes[copied..]);
                // Masks replace whole matches of UTF-8 passwords; a match can only end inside a
                // character if it was spelled out byte by byte, so stay lossless but safe.
                Cow::Owned(String::from_utf8_lossy(&o).into_owned())
            }
        }
    }
}

/// Where a spelling of `password` that starts at `text[at]` ends, if one does.
fn match_at(text: &[u8], at: usize, password: &[u8]) -> Option<usize> {
    let mut i = at;
    let mut p = 0;
    while p < password.len() {
        let slashes = text[i..].iter().take_while(|&&b| b == b'\\').count();
        let j = i + slashes;
        let b = password[p];
        // A whole character as `u{…}` or `uHHHH` (possibly a surrogate pair) after a backslash.
        if slashes > 0 {
            if let Some((next_p, next_i)) = unicode_escape(text, j, password, p) {
                p = next_p;
                i = next_i;
                continue;
            }
        }
        if b == b'\\' && slashes > 0 {
            // The backslash itself, doubled once per layer of escaping.
            i = j;
            p += 1;
            continue;
        }
        let next = text.get(j).copied()?;
        let letter = slashes > 0 && control_letter(b) == Some(next);
        let hex = (slashes > 0 && (next == b'x' || next == b'X')) || next == b'%';
        i = if next == b || letter {
            j + 1
        } else if hex && hex_at(text, j + 1) == Some(b) {
            j + 3
        } else {
            return None;
        };
        p += 1;
    }
    Some(i)
}

/// The letter `Debug` and JSON write after a backslash for a control byte.
fn control_letter(b: u8) -> Option<u8> {
    match b {
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        0 => Some(b'0'),
        _ => None,
    }
}

/// The byte spelled by two hex digits at `text[at..at + 2]`.
fn hex_at(text: &[u8], at: usize) -> Option<u8> {
    let digits = std::str::from_utf8(text.get(at..at + 2)?).ok()?;
    u8::from_str_radix(digits, 16).ok()
}

/// `u{HEX}` or `uHHHH` (with a second `\uHHHH` for a surrogate pair) at `text[at]` spelling the character
/// at `password[p]`: the positions after it in the password and in the text.
fn unicode_escape(text: &[u8], at: usize, password: &[u8], p: usize) -> Option<(usize, usize)> {
    let ch = std::str::from_utf8(&password[p..]).ok()?.chars().next()?;
    let rest = text.get(at..)?;
    let rest = rest.strip_prefix(b"u")?;
    if let Some(braced) = rest.strip_prefix(b"{") {
        let close = braced.iter().position(|&b| b == b'}')?;
        let code = u32::from_str_radix(std::str::from_utf8(&braced[..close]).ok()?, 16).ok()?;
        return (code == ch as u32).then_some((p + ch.len_utf8(), at + 2 + close + 1));
    }
    let unit = |at: usize| -> Option<u16> {
        u16::from_str_radix(std::str::from_utf8(text.get(at..at + 4)?).ok()?, 16).ok()
    };
    let mut units = [0u16; 2];
    let encoded = ch.encode_utf16(&mut units);
    let first = unit(at + 1)?;
    if encoded.len() == 1 {
        return (first == encoded[0]).then_some((p + ch.len_utf8(), at + 5));
    }
    // The low surrogate: `\uHHHH` after any run of backslashes.
    let after = at + 5;
    let slashes = text[after..].iter().take_while(|&&b| b == b'\\').count();
    let second_at = after + slashes;
    let second = unit(second_at + 1).filter(|_| slashes > 0 && text.get(second_at) == Some(&b'u'))?;
    (first == encoded[0] && second == encoded[1]).then_some((p + ch.len_utf8(), second_at + 5))
}

/// The password part of a DSN's user info as typed (`scheme://user:PASSWORD@host…`), if any.
fn typed_password(dsn: &str) -> Option<&str> {
    let rest = dsn.split_once("://")?.1;
    // The user info ends at the last '@' before the query (a password may hold an unencoded '@' or '/').
    let head = rest.split_once('?').map_or(rest, |(h, _)| h);
    let at = head.rfind('@')?;
    let (_, password) = head[..at].split_once(':')?;
    Some(password)
}

/// A [`MakeWriter`] that masks the secrets in each event before it reaches `inner`.
///
/// Each event's writer collects the whole formatted event and writes it masked when dropped, so a
/// password split across two `write` calls is still found.
pub struct RedactingWriter<M> {
    inner: M,
    secrets: Arc<Secrets>,
}

impl<M> RedactingWriter<M> {
    pub fn new(inner: M, secrets: Secrets) -> Self {
        RedactingWriter {
            inner,
            secrets: Arc::new(secrets),
        }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingWriter<M> {
    type Writer = Redacted<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Redacted {
            inner: self.inner.make_writer(),
            secrets: &self.secrets,
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        Redacted {
            inner: self.inner.make_writer_for(meta),
            secrets: &self.secrets,
            buf: Vec::new(),
        }
    }
}

/// One event's writer (see [`RedactingWriter`]).
pub struct Redacted<'a, W: io::Write> {
    inner: W,
    secrets: &'a Secrets,
    buf: Vec<u8>,
}

impl<W: io::Write> Redacted<'_, W> {
    fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let text = String::from_utf8_lossy(&buf);
        self.inner.write_all(self.secrets.redact(&text).as_bytes())?;
        self.inner.flush()
    }
}

impl<W: io::Write> io::Write for Redacted<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    /// Buffered until the event is complete: a flush in the middle must not split a password.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: io::Write> Drop for Redacted<'_, W> {
    fn drop(&mut self) {
        let _ = self.write_out();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn every_printed_form_is_masked_however_deeply_escaped() {
        let pw = "p\"a\\ss w!é😀\n";
        let json = serde_json::to_string(pw).unwrap();
        let debug = format!("{pw:?}");
        let bytes_debug = format!("{:?}", bytes::Bytes::from(json.clone()));
        let s = Secrets::new([pw]);
        for text in [
            format!("password: {pw} end"),
            debug.clone(),
            json.clone(),
            serde_json::to_string(&debug).unwrap(),
            bytes_debug.clone(),
            serde_json::to_string(&bytes_debug).unwrap(),
            serde_json::to_string(&serde_json::to_string(&bytes_debug).unwrap()).unwrap(),
            format!(
                "tmq+ws://root:{}@h",
                percent_encoding::utf8_percent_encode(pw, percent_encoding::NON_ALPHANUMERIC)
            ),
            "x p%22a%5Css%20w!%C3%A9%F0%9F%98%80%0a y".to_string(),
        ] {
            let out = s.redact(&text);
            assert!(out.contains(MASK), "{text} → {out}");
            assert!(!out.contains("ss w") && !out.contains("ss%20w"), "{text} → {out}");
        }
    }

    #[test]
    fn text_without_a_password_is_unchanged_and_empty_passwords_mask_nothing() {
        let s = Secrets::new(["", "S3cret"]);
        assert!(matches!(s.redact("nothing here"), Cow::Borrowed(_)));
        assert!(Secrets::new([""]).is_empty());
    }

    #[test]
    fn the_typed_form_of_a_raw_dsn_is_masked() {
        let s = Secrets::default().with_typed("mqtt://u:We%69rd@host:1883?topic=a@b");
        assert_eq!(s.redact("x We%69rd y, Weird"), "x *** y, ***");
        assert!(Secrets::default()
            .with_typed("mqtt://host:1883?topic=a@b")
            .is_empty());
    }

    #[test]
    fn a_password_split_across_writes_is_masked_once_the_event_is_complete() {
        let sink = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let writer = {
            let sink = sink.clone();
            RedactingWriter::new(move || SinkWriter(sink.clone()), Secrets::new(["S3cret"]))
        };
        {
            let mut w = writer.make_writer();
            w.write_all(b"pass=S3").unwrap();
            w.flush().unwrap();
            w.write_all(b"cret\n").unwrap();
        }
        assert_eq!(
            String::from_utf8(sink.lock().unwrap().clone()).unwrap(),
            "pass=***\n"
        );
    }

    struct SinkWriter(Arc<std::sync::Mutex<Vec<u8>>>);

    impl io::Write for SinkWriter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
