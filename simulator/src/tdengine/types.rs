//! TDengine's data types and values, as the stand-in stores them and as raw blocks carry them.

/// A TDengine column type; the discriminant is the type id used on the wire (raw blocks, `fields_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ColumnType {
    Bool = 1,
    TinyInt = 2,
    SmallInt = 3,
    Int = 4,
    BigInt = 5,
    Float = 6,
    Double = 7,
    VarChar = 8,
    Timestamp = 9,
    NChar = 10,
    UTinyInt = 11,
    USmallInt = 12,
    UInt = 13,
    UBigInt = 14,
    Json = 15,
    VarBinary = 16,
    Geometry = 20,
}

/// A column or tag definition. `length` is the declared length of variable-width types
/// (`VARCHAR(24)` → 24, in characters for NCHAR) and the fixed width otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: ColumnType,
    pub length: u32,
}

/// One stored value. Timestamps are raw counts in the database precision.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    TinyInt(i8),
    SmallInt(i16),
    Int(i32),
    BigInt(i64),
    Float(f32),
    Double(f64),
    VarChar(String),
    Timestamp(i64),
    NChar(String),
    UTinyInt(u8),
    USmallInt(u16),
    UInt(u32),
    UBigInt(u64),
    Json(String),
    VarBinary(Vec<u8>),
    Geometry(Vec<u8>),
}

/// Timestamp precision of a database (`precision` on the wire: 0 ms, 1 µs, 2 ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Millisecond = 0,
    Microsecond = 1,
    Nanosecond = 2,
}
