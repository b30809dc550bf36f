//! Well-known text → well-known binary for GEOMETRY values (`POINT`, `LINESTRING`, `POLYGON`), the form
//! TDengine stores and raw blocks carry (little-endian WKB).

/// Converts WKT like `POINT(1 2)` or `LINESTRING(0 0, 1 1)` to little-endian WKB; `None` if malformed.
pub fn to_wkb(wkt: &str) -> Option<Vec<u8>> {
    let s = wkt.trim();
    let open = s.find('(')?;
    let kind = s[..open].trim().to_ascii_uppercase();
    let body = s[open..].trim();
    let inner = body.strip_prefix('(')?.strip_suffix(')')?;
    let mut out = vec![1u8];
    match kind.as_str() {
        "POINT" => {
            out.extend_from_slice(&1u32.to_le_bytes());
            let (x, y) = point(inner)?;
            push_xy(&mut out, x, y);
        }
        "LINESTRING" => {
            out.extend_from_slice(&2u32.to_le_bytes());
            ring(&mut out, inner)?;
        }
        "POLYGON" => {
            out.extend_from_slice(&3u32.to_le_bytes());
            let rings: Vec<&str> = inner.split("),").collect();
            out.extend_from_slice(&(rings.len() as u32).to_le_bytes());
            for r in rings {
                let r = r.trim().trim_start_matches('(').trim_end_matches(')');
                ring(&mut out, r)?;
            }
        }
        _ => return None,
    }
    Some(out)
}

fn point(s: &str) -> Option<(f64, f64)> {
    let mut it = s.split_whitespace();
    let x = it.next()?.parse().ok()?;
    let y = it.next()?.parse().ok()?;
    it.next().is_none().then_some((x, y))
}

fn push_xy(out: &mut Vec<u8>, x: f64, y: f64) {
    out.extend_from_slice(&x.to_le_bytes());
    out.extend_from_slice(&y.to_le_bytes());
}

fn ring(out: &mut Vec<u8>, s: &str) -> Option<()> {
    let pts: Vec<(f64, f64)> = s.split(',').map(point).collect::<Option<_>>()?;
    out.extend_from_slice(&(pts.len() as u32).to_le_bytes());
    for (x, y) in pts {
        push_xy(out, x, y);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn point_and_line() {
        let p = super::to_wkb("POINT(1 2)").unwrap();
        assert_eq!(p.len(), 21);
        assert_eq!(&p[..5], &[1, 1, 0, 0, 0]);
        assert_eq!(super::to_wkb("linestring(0 0, 1 1)").unwrap().len(), 9 + 32);
        assert!(super::to_wkb("POINT(1)").is_none());
    }
}
