//! Raw block encoder: the columnar format `fetch_block`, binary fetch (action 7) and TMQ `fetch_block`
//! carry (§4 of the protocol reference). The header's `length` is exact — the official client asserts it.

use super::types::{ColumnType, Field, Value};

/// Size of the fixed block header: version, length, rows, cols, flag (i32 each) and the group id (u64).
pub const HEADER_LEN: usize = 28;
const HAS_COLUMN_INFO: u32 = 0x8000_0000;

/// Builds one raw block row by row, keeping the data column-wise as the wire wants it.
#[derive(Debug)]
pub struct BlockBuilder {
    types: Vec<(ColumnType, u32)>,
    cols: Vec<ColumnBuf>,
    rows: usize,
}

#[derive(Debug)]
enum ColumnBuf {
    Fixed { nulls: Vec<u8>, data: Vec<u8> },
    Var { offsets: Vec<i32>, data: Vec<u8> },
}

impl BlockBuilder {
    pub fn new(fields: &[Field]) -> Self {
        Self::with_capacity(fields, 0)
    }

    pub fn with_capacity(fields: &[Field], rows: usize) -> Self {
        let types = fields.iter().map(|f| (f.ty, f.block_bytes())).collect();
        let cols = fields
            .iter()
            .map(|f| match f.ty.fixed_width() {
                Some(w) => ColumnBuf::Fixed {
                    nulls: Vec::with_capacity(rows.div_ceil(8)),
                    data: Vec::with_capacity(rows * w as usize),
                },
                None => ColumnBuf::Var {
                    offsets: Vec::with_capacity(rows),
                    data: Vec::new(),
                },
            })
            .collect();
        Self { types, cols, rows: 0 }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends one row; `row` yields one value per field, in field order. A value whose variant does not
    /// match its column's type is written as NULL (the store never produces one).
    pub fn push_row<'a>(&mut self, row: impl IntoIterator<Item = &'a Value>) {
        let bit = self.rows % 8;
        let mut n = 0;
        for ((buf, (ty, _)), value) in self.cols.iter_mut().zip(&self.types).zip(row) {
            n += 1;
            match buf {
                ColumnBuf::Fixed { nulls, data } => {
                    if bit == 0 {
                        nulls.push(0);
                    }
                    if !write_fixed(*ty, value, data) {
                        *nulls.last_mut().expect("pushed above") |= 0x80 >> bit;
                        data.extend(std::iter::repeat_n(0, ty.fixed_width().unwrap_or(0) as usize));
                    }
                }
                ColumnBuf::Var { offsets, data } => {
                    let start = data.len();
                    if write_var(*ty, value, data) {
                        offsets.push(start as i32);
                    } else {
                        offsets.push(-1);
                    }
                }
            }
        }
        assert_eq!(n, self.types.len(), "row width must match the block's fields");
        self.rows += 1;
    }

    /// The finished block.
    pub fn finish(self) -> Vec<u8> {
        let cols = self.cols.len();
        let bitmap = self.rows.div_ceil(8);
        let body: usize = self
            .cols
            .iter()
            .map(|c| match c {
                ColumnBuf::Fixed { data, .. } => bitmap + data.len(),
                ColumnBuf::Var { offsets, data } => offsets.len() * 4 + data.len(),
            })
            .sum();
        let len = HEADER_LEN + cols * 5 + cols * 4 + body;
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&1i32.to_le_bytes());
        out.extend_from_slice(&(len as i32).to_le_bytes());
        out.extend_from_slice(&(self.rows as i32).to_le_bytes());
        out.extend_from_slice(&(cols as i32).to_le_bytes());
        out.extend_from_slice(&HAS_COLUMN_INFO.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        for (ty, bytes) in &self.types {
            out.push(*ty as u8);
            out.extend_from_slice(&(*bytes as i32).to_le_bytes());
        }
        for c in &self.cols {
            let l = match c {
                ColumnBuf::Fixed { data, .. } => data.len(),
                ColumnBuf::Var { data, .. } => data.len(),
            };
            out.extend_from_slice(&(l as i32).to_le_bytes());
        }
        for c in self.cols {
            match c {
                ColumnBuf::Fixed { mut nulls, data } => {
                    nulls.resize(bitmap, 0);
                    out.extend_from_slice(&nulls);
                    out.extend_from_slice(&data);
                }
                ColumnBuf::Var { offsets, data } => {
                    for o in offsets {
                        out.extend_from_slice(&o.to_le_bytes());
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
        debug_assert_eq!(out.len(), len);
        out
    }
}

/// Encodes `rows` (each in `fields` order) as one raw block.
pub fn encode_block<R: AsRef<[Value]>>(fields: &[Field], rows: &[R]) -> Vec<u8> {
    let mut b = BlockBuilder::with_capacity(fields, rows.len());
    for r in rows {
        b.push_row(r.as_ref());
    }
    b.finish()
}

fn write_fixed(ty: ColumnType, v: &Value, out: &mut Vec<u8>) -> bool {
    match (ty, v) {
        (ColumnType::Bool, Value::Bool(b)) => out.push(*b as u8),
        (ColumnType::TinyInt, Value::TinyInt(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (ColumnType::SmallInt, Value::SmallInt(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (ColumnType::Int, Value::Int(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (ColumnType::BigInt, Value::BigInt(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (ColumnType::Float, Value::Float(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (ColumnType::Double, Value::Double(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (ColumnType::Timestamp, Value::Timestamp(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (ColumnType::UTinyInt, Value::UTinyInt(x)) => out.push(*x),
        (ColumnType::USmallInt, Value::USmallInt(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (ColumnType::UInt, Value::UInt(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (ColumnType::UBigInt, Value::UBigInt(x)) => out.extend_from_slice(&x.to_le_bytes()),
        _ => return false,
    }
    true
}

fn write_var(ty: ColumnType, v: &Value, out: &mut Vec<u8>) -> bool {
    let bytes: &[u8] = match (ty, v) {
        (ColumnType::NChar, Value::NChar(s)) => {
            let n = s.chars().count() * 4;
            out.extend_from_slice(&(n as u16).to_le_bytes());
            for c in s.chars() {
                out.extend_from_slice(&(c as u32).to_le_bytes());
            }
            return true;
        }
        (ColumnType::VarChar, Value::VarChar(s)) | (ColumnType::Json, Value::Json(s)) => s.as_bytes(),
        (ColumnType::VarBinary, Value::VarBinary(b)) | (ColumnType::Geometry, Value::Geometry(b)) => b,
        _ => return false,
    };
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_null_bitmap() {
        let fields = [
            Field::fixed("ts", ColumnType::Timestamp),
            Field::new("s", ColumnType::VarChar, 8),
        ];
        let rows = vec![
            vec![Value::Timestamp(1), Value::VarChar("ab".into())],
            vec![Value::Null, Value::Null],
        ];
        let b = encode_block(&fields, &rows);
        assert_eq!(i32::from_le_bytes(b[4..8].try_into().unwrap()) as usize, b.len());
        assert_eq!(i32::from_le_bytes(b[8..12].try_into().unwrap()), 2);
        // ts column: bitmap byte after header+schemas+lengths, row 1 null → 0x40.
        let data = HEADER_LEN + 2 * 5 + 2 * 4;
        assert_eq!(b[data], 0x40);
        // varchar offsets: 0, -1.
        let var = data + 1 + 16;
        assert_eq!(i32::from_le_bytes(b[var..var + 4].try_into().unwrap()), 0);
        assert_eq!(i32::from_le_bytes(b[var + 4..var + 8].try_into().unwrap()), -1);
        assert_eq!(b.len(), var + 8 + 4);
    }
}
