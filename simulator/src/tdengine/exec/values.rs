//! SQL literals to typed values: what `INSERT`, `TAGS (…)` and `SET TAG` write, with TDengine's range,
//! length and format checks and its error codes.

use crate::tdengine::error::{code, TdError, TdResult};
use crate::tdengine::eval::{literal_ts, parse_timestamp};
use crate::tdengine::sql::ast::{Lit, Literal};
use crate::tdengine::types::{ColumnType, Field, Precision, Value};

/// Converts a literal to a value of `f`'s type in a database of `precision` (`now` in that precision, for
/// `NOW`), with TDengine's range and length checks.
pub(super) fn convert(lit: &Lit, f: &Field, precision: Precision, now: i64) -> TdResult<Value> {
    use ColumnType as T;
    if lit.value == Literal::Null {
        return Ok(Value::Null);
    }
    let int = |lo: i128, hi: i128| to_int(lit, f, lo, hi);
    Ok(match f.ty {
        T::Bool => Value::Bool(to_bool(lit, f)?),
        T::TinyInt => Value::TinyInt(int(i8::MIN as i128, i8::MAX as i128)? as i8),
        T::SmallInt => Value::SmallInt(int(i16::MIN as i128, i16::MAX as i128)? as i16),
        T::Int => Value::Int(int(i32::MIN as i128, i32::MAX as i128)? as i32),
        T::BigInt => Value::BigInt(int(i64::MIN as i128, i64::MAX as i128)? as i64),
        T::UTinyInt => Value::UTinyInt(int(0, u8::MAX as i128)? as u8),
        T::USmallInt => Value::USmallInt(int(0, u16::MAX as i128)? as u16),
        T::UInt => Value::UInt(int(0, u32::MAX as i128)? as u32),
        T::UBigInt => Value::UBigInt(int(0, u64::MAX as i128)? as u64),
        T::Float => {
            let x = to_float(lit, f)?;
            if x.is_finite() && x.abs() > f32::MAX as f64 {
                return Err(overflow(lit, f.ty));
            }
            Value::Float(x as f32)
        }
        T::Double => Value::Double(to_float(lit, f)?),
        T::Timestamp => Value::Timestamp(to_timestamp(lit, precision, now)?),
        T::VarChar => Value::VarChar(within(f, to_text(lit, f)?, String::len)?),
        T::NChar => Value::NChar(within(f, to_text(lit, f)?, |s| s.chars().count())?),
        T::Json => Value::Json(to_json(lit, f)?),
        T::VarBinary => Value::VarBinary(within(f, to_bytes(lit, f)?, Vec::len)?),
        T::Geometry => {
            let wkb = crate::tdengine::wkt::to_wkb(&to_text(lit, f)?).ok_or_else(|| {
                TdError::new(
                    code::WRONG_VALUE_TYPE,
                    format!("Invalid geometry value for {}", f.name),
                )
            })?;
            Value::Geometry(within(f, wkb, Vec::len)?)
        }
    })
}

fn overflow(lit: &Lit, ty: ColumnType) -> TdError {
    let what = ty.sql_name().to_ascii_lowercase();
    TdError::new(
        code::SYNTAX_ERROR,
        format!("syntax error near position {} ({what} data overflow)", lit.pos),
    )
}

fn wrong_type(lit: &Lit, f: &Field) -> TdError {
    TdError::new(
        code::WRONG_VALUE_TYPE,
        format!(
            "Invalid value type at position {} for {} {}",
            lit.pos,
            f.name,
            f.ty.sql_name()
        ),
    )
}

/// `value` if its length (as `len` measures it) fits `f`'s declared length.
fn within<T>(f: &Field, value: T, len: impl Fn(&T) -> usize) -> TdResult<T> {
    if len(&value) > f.length as usize {
        return Err(TdError::new(
            code::VALUE_TOO_LONG,
            format!("Value too long for column/tag: {}", f.name),
        ));
    }
    Ok(value)
}

fn to_bool(lit: &Lit, f: &Field) -> TdResult<bool> {
    match &lit.value {
        Literal::Bool(b) => Ok(*b),
        Literal::Int(i) => Ok(*i != 0),
        Literal::Float(x) => Ok(*x != 0.0),
        Literal::Str(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Literal::Str(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(wrong_type(lit, f)),
    }
}

/// An integer in `lo..=hi`; floats and numeric strings are truncated, as TDengine does.
fn to_int(lit: &Lit, f: &Field, lo: i128, hi: i128) -> TdResult<i128> {
    let v = match &lit.value {
        Literal::Int(i) => *i,
        Literal::Bool(b) => *b as i128,
        Literal::Float(x) if x.is_finite() => x.trunc() as i128,
        Literal::Str(s) => match s.trim().parse::<i128>() {
            Ok(v) => v,
            Err(_) => s.trim().parse::<f64>().map_err(|_| wrong_type(lit, f))?.trunc() as i128,
        },
        _ => return Err(wrong_type(lit, f)),
    };
    if v < lo || v > hi {
        return Err(overflow(lit, f.ty));
    }
    Ok(v)
}

fn to_float(lit: &Lit, f: &Field) -> TdResult<f64> {
    match &lit.value {
        Literal::Int(i) => Ok(*i as f64),
        Literal::Float(x) => Ok(*x),
        Literal::Bool(b) => Ok(*b as u8 as f64),
        Literal::Str(s) => s.trim().parse::<f64>().map_err(|_| wrong_type(lit, f)),
        _ => Err(wrong_type(lit, f)),
    }
}

fn to_text(lit: &Lit, f: &Field) -> TdResult<String> {
    match &lit.value {
        Literal::Str(s) => Ok(s.clone()),
        Literal::Int(i) => Ok(i.to_string()),
        Literal::Float(x) => Ok(x.to_string()),
        Literal::Bool(b) => Ok(b.to_string()),
        _ => Err(wrong_type(lit, f)),
    }
}

fn to_timestamp(lit: &Lit, precision: Precision, now: i64) -> TdResult<i64> {
    let v = match &lit.value {
        Literal::Str(s) => parse_timestamp(s, precision),
        Literal::Float(_) | Literal::Bool(_) => None,
        l => literal_ts(l, precision, now),
    };
    v.ok_or_else(|| {
        TdError::new(
            code::INCORRECT_TIMESTAMP_VAL,
            format!("Incorrect TIMESTAMP value at position {}", lit.pos),
        )
    })
}

/// A JSON tag: an object or `null`, kept as written.
fn to_json(lit: &Lit, f: &Field) -> TdResult<String> {
    let s = to_text(lit, f)?;
    let parsed: serde_json::Value = serde_json::from_str(&s).map_err(|_| {
        TdError::new(
            code::WRONG_VALUE_TYPE,
            format!("Invalid JSON value for tag {}", f.name),
        )
    })?;
    if !(parsed.is_object() || parsed.is_null()) {
        return Err(TdError::new(
            code::WRONG_VALUE_TYPE,
            format!("Invalid JSON value for tag {}: not an object", f.name),
        ));
    }
    Ok(s)
}

/// VARBINARY: `\x…` is hex, anything else its UTF-8 bytes.
fn to_bytes(lit: &Lit, f: &Field) -> TdResult<Vec<u8>> {
    let s = to_text(lit, f)?;
    match s.strip_prefix("\\x").or_else(|| s.strip_prefix("\\X")) {
        Some(hex) => decode_hex(hex).ok_or_else(|| wrong_type(lit, f)),
        None => Ok(s.into_bytes()),
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(value: Literal) -> Lit {
        Lit { value, pos: 7 }
    }

    fn conv(value: Literal, f: &Field) -> TdResult<Value> {
        convert(&lit(value), f, Precision::Millisecond, 1_000)
    }

    #[test]
    fn integers_check_their_range_and_truncate_floats_and_numeric_strings() {
        let f = Field::fixed("v", ColumnType::TinyInt);
        assert_eq!(conv(Literal::Int(127), &f), Ok(Value::TinyInt(127)));
        assert_eq!(conv(Literal::Float(-1.9), &f), Ok(Value::TinyInt(-1)));
        assert_eq!(conv(Literal::Str(" 12.7 ".into()), &f), Ok(Value::TinyInt(12)));
        let e = conv(Literal::Int(128), &f).unwrap_err();
        assert_eq!(e.code, code::SYNTAX_ERROR);
        assert!(e.message.contains("position 7 (tinyint data overflow)"), "{e}");
        assert_eq!(
            conv(Literal::Str("x".into()), &f).unwrap_err().code,
            code::WRONG_VALUE_TYPE
        );
        let u = Field::fixed("u", ColumnType::UBigInt);
        assert_eq!(
            conv(Literal::Int(u64::MAX as i128), &u),
            Ok(Value::UBigInt(u64::MAX))
        );
        assert_eq!(conv(Literal::Int(-1), &u).unwrap_err().code, code::SYNTAX_ERROR);
    }

    #[test]
    fn text_lengths_count_bytes_for_varchar_and_characters_for_nchar() {
        let v = Field::new("s", ColumnType::VarChar, 4);
        let n = Field::new("n", ColumnType::NChar, 2);
        assert_eq!(
            conv(Literal::Str("北".into()), &v),
            Ok(Value::VarChar("北".into()))
        );
        assert_eq!(
            conv(Literal::Str("北京".into()), &v).unwrap_err().code,
            code::VALUE_TOO_LONG
        );
        assert_eq!(
            conv(Literal::Str("北京".into()), &n),
            Ok(Value::NChar("北京".into()))
        );
        assert_eq!(
            conv(Literal::Str("北京人".into()), &n).unwrap_err().code,
            code::VALUE_TOO_LONG
        );
        assert_eq!(conv(Literal::Int(12), &v), Ok(Value::VarChar("12".into())));
    }

    #[test]
    fn varbinary_reads_hex_after_backslash_x_and_json_tags_must_be_objects() {
        let b = Field::new("b", ColumnType::VarBinary, 2);
        assert_eq!(
            conv(Literal::Str("\\x0aFF".into()), &b),
            Ok(Value::VarBinary(vec![0x0a, 0xff]))
        );
        assert_eq!(
            conv(Literal::Str("\\x0".into()), &b).unwrap_err().code,
            code::WRONG_VALUE_TYPE
        );
        assert_eq!(
            conv(Literal::Str("abc".into()), &b).unwrap_err().code,
            code::VALUE_TOO_LONG
        );
        let j = Field::new("j", ColumnType::Json, 4096);
        assert_eq!(
            conv(Literal::Str("{\"a\":1}".into()), &j),
            Ok(Value::Json("{\"a\":1}".into()))
        );
        assert_eq!(
            conv(Literal::Str("[1]".into()), &j).unwrap_err().code,
            code::WRONG_VALUE_TYPE
        );
        assert_eq!(conv(Literal::Null, &j), Ok(Value::Null));
    }

    #[test]
    fn timestamps_take_integers_strings_and_now_but_not_floats() {
        let t = Field::fixed("ts", ColumnType::Timestamp);
        assert_eq!(conv(Literal::Int(5), &t), Ok(Value::Timestamp(5)));
        assert_eq!(
            conv(Literal::Now { offset_ns: 0 }, &t),
            Ok(Value::Timestamp(1_000))
        );
        assert_eq!(
            conv(Literal::Str("2024-01-01T00:00:00Z".into()), &t),
            Ok(Value::Timestamp(1_704_067_200_000))
        );
        assert_eq!(
            conv(Literal::Float(1.5), &t).unwrap_err().code,
            code::INCORRECT_TIMESTAMP_VAL
        );
        let b = Field::fixed("b", ColumnType::Bool);
        assert_eq!(conv(Literal::Str("TRUE".into()), &b), Ok(Value::Bool(true)));
        assert_eq!(
            conv(Literal::Str("yes".into()), &b).unwrap_err().code,
            code::WRONG_VALUE_TYPE
        );
    }
}
