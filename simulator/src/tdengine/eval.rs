//! Evaluating `WHERE` conditions against a table's tags and a row's columns, and reading timestamp
//! literals (`NOW ± d`, `'2024-01-01 00:00:00.000'`, epoch integers) in a database's precision.

use std::cmp::Ordering;

use super::sql::ast::{CmpOp, Expr, Literal};
use super::types::{ColumnType, Field, Precision, Value};

/// What a condition can see: the table name, its tags and (for row filters) one row.
pub struct Env<'a> {
    pub table: &'a str,
    pub tags: &'a [(Field, Value)],
    pub columns: &'a [Field],
    pub row: Option<&'a [Value]>,
    pub precision: Precision,
    /// `NOW` of the statement, in `precision`.
    pub now: i64,
}

enum Key<'a> {
    Null,
    Int(i128),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    /// A string literal compared with a timestamp column, parsed late.
    Unknown,
}

impl Expr {
    /// Whether a table with these tags passes a tag filter (columns read as unknown → the condition fails).
    pub fn matches_tags(&self, table: &str, tags: &[(Field, Value)]) -> bool {
        let env = Env {
            table,
            tags,
            columns: &[],
            row: None,
            precision: Precision::Millisecond,
            now: Precision::Millisecond.now(),
        };
        self.eval(&env) == Some(true)
    }

    /// Three-valued evaluation: `None` is SQL's unknown (NULLs, missing columns, incomparable types).
    pub fn eval(&self, env: &Env) -> Option<bool> {
        match self {
            Expr::And(a, b) => match (a.eval(env), b.eval(env)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Or(a, b) => match (a.eval(env), b.eval(env)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::Not(a) => a.eval(env).map(|v| !v),
            Expr::IsNull { expr, negated } => {
                let null = matches!(operand(expr, env, false)?, Key::Null);
                Some(null != *negated)
            }
            Expr::Cmp(a, op, b) => {
                let ord = compare(a, b, env)?;
                Some(match op {
                    CmpOp::Eq => ord == Ordering::Equal,
                    CmpOp::Ne => ord != Ordering::Equal,
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::Le => ord != Ordering::Greater,
                    CmpOp::Gt => ord == Ordering::Greater,
                    CmpOp::Ge => ord != Ordering::Less,
                })
            }
            Expr::Between { expr, low, high } => Some(
                compare(expr, low, env)? != Ordering::Less && compare(expr, high, env)? != Ordering::Greater,
            ),
            Expr::In { expr, list } => {
                let mut unknown = false;
                for e in list {
                    match compare(expr, e, env) {
                        Some(Ordering::Equal) => return Some(true),
                        None => unknown = true,
                        _ => {}
                    }
                }
                if unknown {
                    None
                } else {
                    Some(false)
                }
            }
            Expr::Column(_) | Expr::Lit(_) => match operand(self, env, false)? {
                Key::Int(i) => Some(i != 0),
                Key::Float(f) => Some(f != 0.0),
                Key::Null => None,
                _ => None,
            },
        }
    }

    /// Lower and upper bounds (inclusive) this condition puts on column `ts`, for `DELETE`'s meta event.
    pub fn ts_bounds(&self, ts: &str, precision: Precision, now: i64) -> (i64, i64) {
        let (mut lo, mut hi) = (i64::MIN, i64::MAX);
        self.collect_bounds(ts, precision, now, &mut lo, &mut hi);
        (lo, hi)
    }

    fn collect_bounds(&self, ts: &str, precision: Precision, now: i64, lo: &mut i64, hi: &mut i64) {
        match self {
            Expr::And(a, b) => {
                a.collect_bounds(ts, precision, now, lo, hi);
                b.collect_bounds(ts, precision, now, lo, hi);
            }
            Expr::Between { expr, low, high } if matches!(&**expr, Expr::Column(c) if c == ts) => {
                if let (Expr::Lit(l), Expr::Lit(h)) = (&**low, &**high) {
                    if let Some(v) = literal_ts(&l.value, precision, now) {
                        *lo = (*lo).max(v);
                    }
                    if let Some(v) = literal_ts(&h.value, precision, now) {
                        *hi = (*hi).min(v);
                    }
                }
            }
            Expr::Cmp(a, op, b) => {
                let (op, lit) = match (&**a, &**b) {
                    (Expr::Column(c), Expr::Lit(l)) if c == ts => (*op, l),
                    (Expr::Lit(l), Expr::Column(c)) if c == ts => (flip(*op), l),
                    _ => return,
                };
                let Some(v) = literal_ts(&lit.value, precision, now) else {
                    return;
                };
                match op {
                    CmpOp::Eq => {
                        *lo = (*lo).max(v);
                        *hi = (*hi).min(v);
                    }
                    CmpOp::Gt => *lo = (*lo).max(v.saturating_add(1)),
                    CmpOp::Ge => *lo = (*lo).max(v),
                    CmpOp::Lt => *hi = (*hi).min(v.saturating_sub(1)),
                    CmpOp::Le => *hi = (*hi).min(v),
                    CmpOp::Ne => {}
                }
            }
            _ => {}
        }
    }
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        o => o,
    }
}

/// The type of a column/tag operand, to read string literals next to timestamps as times.
fn operand_type(e: &Expr, env: &Env) -> Option<ColumnType> {
    let Expr::Column(name) = e else { return None };
    env.columns
        .iter()
        .find(|f| &f.name == name)
        .or_else(|| env.tags.iter().map(|(f, _)| f).find(|f| &f.name == name))
        .map(|f| f.ty)
}

fn compare(a: &Expr, b: &Expr, env: &Env) -> Option<Ordering> {
    let ts = operand_type(a, env) == Some(ColumnType::Timestamp)
        || operand_type(b, env) == Some(ColumnType::Timestamp);
    let ka = operand(a, env, ts)?;
    let kb = operand(b, env, ts)?;
    match (ka, kb) {
        (Key::Null, _) | (_, Key::Null) | (Key::Unknown, _) | (_, Key::Unknown) => None,
        (Key::Int(x), Key::Int(y)) => Some(x.cmp(&y)),
        (Key::Int(x), Key::Float(y)) => (x as f64).partial_cmp(&y),
        (Key::Float(x), Key::Int(y)) => x.partial_cmp(&(y as f64)),
        (Key::Float(x), Key::Float(y)) => x.partial_cmp(&y),
        (Key::Str(x), Key::Str(y)) => Some(x.cmp(y)),
        (Key::Bytes(x), Key::Bytes(y)) => Some(x.cmp(y)),
        (Key::Str(x), Key::Bytes(y)) => Some(x.as_bytes().cmp(y)),
        (Key::Bytes(x), Key::Str(y)) => Some(x.cmp(y.as_bytes())),
        _ => None,
    }
}

fn operand<'a>(e: &'a Expr, env: &'a Env, ts: bool) -> Option<Key<'a>> {
    match e {
        Expr::Column(name) => {
            if name.eq_ignore_ascii_case("tbname") {
                return Some(Key::Str(env.table));
            }
            if let Some(i) = env.columns.iter().position(|f| &f.name == name) {
                return Some(value_key(env.row?.get(i)?));
            }
            let (_, v) = env.tags.iter().find(|(f, _)| &f.name == name)?;
            Some(value_key(v))
        }
        Expr::Lit(l) => Some(match &l.value {
            Literal::Null => Key::Null,
            Literal::Bool(b) => Key::Int(*b as i128),
            Literal::Int(i) => Key::Int(*i),
            Literal::Float(f) => Key::Float(*f),
            Literal::Str(s) if ts => match parse_timestamp(s, env.precision) {
                Some(t) => Key::Int(t as i128),
                None => Key::Unknown,
            },
            Literal::Str(s) => Key::Str(s),
            Literal::Now { offset_ns } => Key::Int(env.now as i128 + offset_ns / ns_per_unit(env.precision)),
        }),
        _ => None,
    }
}

fn value_key(v: &Value) -> Key<'_> {
    match v {
        Value::Null => Key::Null,
        Value::Bool(b) => Key::Int(*b as i128),
        Value::TinyInt(x) => Key::Int(*x as i128),
        Value::SmallInt(x) => Key::Int(*x as i128),
        Value::Int(x) => Key::Int(*x as i128),
        Value::BigInt(x) | Value::Timestamp(x) => Key::Int(*x as i128),
        Value::UTinyInt(x) => Key::Int(*x as i128),
        Value::USmallInt(x) => Key::Int(*x as i128),
        Value::UInt(x) => Key::Int(*x as i128),
        Value::UBigInt(x) => Key::Int(*x as i128),
        Value::Float(x) => Key::Float(*x as f64),
        Value::Double(x) => Key::Float(*x),
        Value::VarChar(s) | Value::NChar(s) | Value::Json(s) => Key::Str(s),
        Value::VarBinary(b) | Value::Geometry(b) => Key::Bytes(b),
    }
}

/// Nanoseconds per unit of `precision`.
pub fn ns_per_unit(p: Precision) -> i128 {
    match p {
        Precision::Millisecond => 1_000_000,
        Precision::Microsecond => 1_000,
        Precision::Nanosecond => 1,
    }
}

/// A timestamp literal in `precision`: integers are raw counts, strings are dates, `NOW ± d` is relative.
pub fn literal_ts(l: &Literal, precision: Precision, now: i64) -> Option<i64> {
    match l {
        Literal::Int(i) => i64::try_from(*i).ok(),
        Literal::Str(s) => parse_timestamp(s, precision),
        Literal::Now { offset_ns } => i64::try_from(now as i128 + offset_ns / ns_per_unit(precision)).ok(),
        _ => None,
    }
}

/// Parses `'YYYY-MM-DD[ HH:MM:SS[.fraction]]'` (local time) or RFC 3339 (`…T…Z`, `…+08:00`) into a count
/// of `precision` units since the epoch.
pub fn parse_timestamp(s: &str, precision: Precision) -> Option<i64> {
    use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone};
    let s = s.trim();
    let dt: DateTime<chrono::FixedOffset> = if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        dt
    } else if let Ok(dt) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z") {
        dt
    } else {
        let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()?
                    .and_hms_opt(0, 0, 0)
            })?;
        Local.from_local_datetime(&naive).earliest()?.fixed_offset()
    };
    let ns = dt.timestamp_nanos_opt()? as i128;
    i64::try_from(ns.div_euclid(ns_per_unit(precision))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdengine::sql::ast::Statement;
    use crate::tdengine::sql::parse;

    fn filter(sql: &str) -> Expr {
        let Statement::Select(s) = parse(&format!("select * from t where {sql}")).unwrap().remove(0) else {
            panic!()
        };
        s.filter.unwrap()
    }

    #[test]
    fn tag_filters() {
        let tags = vec![
            (Field::fixed("groupid", ColumnType::Int), Value::Int(2)),
            (
                Field::new("location", ColumnType::VarChar, 24),
                Value::VarChar("Beijing".into()),
            ),
        ];
        assert!(filter("groupid = 2").matches_tags("d0", &tags));
        assert!(filter("groupid > 1 and location = 'Beijing'").matches_tags("d0", &tags));
        assert!(!filter("groupid in (1, 3)").matches_tags("d0", &tags));
        assert!(filter("tbname = 'd0' or groupid = 9").matches_tags("d0", &tags));
        assert!(!filter("nosuch = 1").matches_tags("d0", &tags));
    }

    #[test]
    fn timestamps() {
        let p = Precision::Millisecond;
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00Z", p),
            Some(1_704_067_200_000)
        );
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00.5+00:00", Precision::Microsecond),
            Some(1_704_067_200_500_000)
        );
        let e = filter("ts >= '2024-01-01T00:00:00Z' and ts < 1704067200010");
        assert_eq!(e.ts_bounds("ts", p, 0), (1_704_067_200_000, 1_704_067_200_009));
    }
}
