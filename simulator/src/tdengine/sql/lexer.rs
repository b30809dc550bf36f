//! Tokenizer for the SQL subset: words, `backquoted` identifiers, 'strings', numbers, durations (`5m`)
//! and punctuation. Tokens are byte ranges into the statement, so lexing allocates nothing.

use crate::tdengine::error::{TdError, TdResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok {
    /// A bare word: keyword or identifier.
    Word,
    /// A `backquoted` identifier.
    Quoted,
    /// A 'string' or "string".
    Str,
    /// An integer or decimal number (unsigned; the parser handles signs).
    Num,
    /// A number with a time unit (`1s`, `5m`, `10a`).
    Dur,
    /// Punctuation or an operator.
    Sym,
    End,
}

#[derive(Debug, Clone, Copy)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

/// Lexes the token starting at or after `pos`.
pub fn lex(sql: &str, mut pos: usize) -> TdResult<Token> {
    let b = sql.as_bytes();
    // Skip white space and `--` comments.
    loop {
        while pos < b.len() && b[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if b[pos..].starts_with(b"--") {
            while pos < b.len() && b[pos] != b'\n' {
                pos += 1;
            }
            continue;
        }
        break;
    }
    let start = pos;
    let tok = |tok, end| Ok(Token { tok, start, end });
    let Some(&c) = b.get(pos) else {
        return tok(Tok::End, pos);
    };
    match c {
        b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
            while pos < b.len() && (b[pos].is_ascii_alphanumeric() || b[pos] == b'_') {
                pos += 1;
            }
            tok(Tok::Word, pos)
        }
        c if c >= 0x80 => {
            // Non-ASCII identifiers (TDengine rejects them unquoted, but they must not panic here).
            Err(TdError::syntax(sql, pos, "unexpected character"))
        }
        b'`' => {
            let Some(len) = sql[pos + 1..].find('`') else {
                return Err(TdError::syntax(sql, pos, "unterminated identifier"));
            };
            tok(Tok::Quoted, pos + 1 + len + 1)
        }
        b'\'' | b'"' => {
            pos += 1;
            while pos < b.len() {
                if b[pos] == b'\\' {
                    pos += 2;
                } else if b[pos] == c {
                    if b.get(pos + 1) == Some(&c) {
                        pos += 2;
                    } else {
                        return tok(Tok::Str, pos + 1);
                    }
                } else {
                    pos += 1;
                }
            }
            Err(TdError::syntax(sql, start, "unterminated string"))
        }
        b'0'..=b'9' | b'.' if c != b'.' || b.get(pos + 1).is_some_and(u8::is_ascii_digit) => {
            while pos < b.len() && b[pos].is_ascii_digit() {
                pos += 1;
            }
            if b.get(pos) == Some(&b'.') {
                pos += 1;
                while pos < b.len() && b[pos].is_ascii_digit() {
                    pos += 1;
                }
            }
            if matches!(b.get(pos), Some(b'e' | b'E')) {
                let mut p = pos + 1;
                if matches!(b.get(p), Some(b'+' | b'-')) {
                    p += 1;
                }
                if b.get(p).is_some_and(u8::is_ascii_digit) {
                    pos = p;
                    while pos < b.len() && b[pos].is_ascii_digit() {
                        pos += 1;
                    }
                    return tok(Tok::Num, pos);
                }
            }
            if b.get(pos).is_some_and(|c| c.is_ascii_alphabetic()) {
                while pos < b.len() && b[pos].is_ascii_alphabetic() {
                    pos += 1;
                }
                return tok(Tok::Dur, pos);
            }
            tok(Tok::Num, pos)
        }
        _ => {
            let two = &b[pos..(pos + 2).min(b.len())];
            if matches!(two, b"<=" | b">=" | b"<>" | b"!=" | b"==") {
                return tok(Tok::Sym, pos + 2);
            }
            if b"(),;.*=<>+-".contains(&c) {
                return tok(Tok::Sym, pos + 1);
            }
            Err(TdError::syntax(sql, pos, "unexpected character"))
        }
    }
}

/// The content of a string token, with `\x` escapes and doubled quotes resolved.
pub fn unquote_str(raw: &str) -> String {
    let q = raw.as_bytes()[0] as char;
    let inner = &raw[1..raw.len() - 1];
    if !inner.contains(['\\', q]) {
        return inner.to_string();
    }
    let mut out = String::with_capacity(inner.len());
    let mut it = inner.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                // `\x` stays as written: VARBINARY literals are '\x0a0b…'.
                Some('x') => out.push_str("\\x"),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else if c == q && it.peek() == Some(&q) {
            it.next();
            out.push(q);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(sql: &str) -> Vec<(Tok, &str)> {
        let mut pos = 0;
        let mut out = vec![];
        loop {
            let t = lex(sql, pos).unwrap();
            if t.tok == Tok::End {
                return out;
            }
            out.push((t.tok, &sql[t.start..t.end]));
            pos = t.end;
        }
    }

    #[test]
    fn tokens() {
        assert_eq!(
            all("insert into `db`.t values(now+1s, -1.5e3, 'a''b', <=)"),
            vec![
                (Tok::Word, "insert"),
                (Tok::Word, "into"),
                (Tok::Quoted, "`db`"),
                (Tok::Sym, "."),
                (Tok::Word, "t"),
                (Tok::Word, "values"),
                (Tok::Sym, "("),
                (Tok::Word, "now"),
                (Tok::Sym, "+"),
                (Tok::Dur, "1s"),
                (Tok::Sym, ","),
                (Tok::Sym, "-"),
                (Tok::Num, "1.5e3"),
                (Tok::Sym, ","),
                (Tok::Str, "'a''b'"),
                (Tok::Sym, ","),
                (Tok::Sym, "<="),
                (Tok::Sym, ")"),
            ]
        );
        assert_eq!(unquote_str("'a''b\\'c'"), "a'b'c");
        assert!(lex("'abc", 0).is_err());
    }
}
