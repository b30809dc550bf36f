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

impl ColumnType {
    /// The type named in SQL (`INT`, `BINARY`, `NCHAR`, …), case-insensitive.
    pub fn from_sql_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "BOOL" | "BOOLEAN" => Self::Bool,
            "TINYINT" => Self::TinyInt,
            "SMALLINT" => Self::SmallInt,
            "INT" | "INTEGER" => Self::Int,
            "BIGINT" => Self::BigInt,
            "FLOAT" => Self::Float,
            "DOUBLE" => Self::Double,
            "VARCHAR" | "BINARY" => Self::VarChar,
            "TIMESTAMP" => Self::Timestamp,
            "NCHAR" => Self::NChar,
            "TINYINT UNSIGNED" => Self::UTinyInt,
            "SMALLINT UNSIGNED" => Self::USmallInt,
            "INT UNSIGNED" => Self::UInt,
            "BIGINT UNSIGNED" => Self::UBigInt,
            "JSON" => Self::Json,
            "VARBINARY" => Self::VarBinary,
            "GEOMETRY" => Self::Geometry,
            _ => return None,
        })
    }

    /// The name TDengine prints for this type (`DESCRIBE`, meta JSON consumers).
    pub fn sql_name(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::TinyInt => "TINYINT",
            Self::SmallInt => "SMALLINT",
            Self::Int => "INT",
            Self::BigInt => "BIGINT",
            Self::Float => "FLOAT",
            Self::Double => "DOUBLE",
            Self::VarChar => "VARCHAR",
            Self::Timestamp => "TIMESTAMP",
            Self::NChar => "NCHAR",
            Self::UTinyInt => "TINYINT UNSIGNED",
            Self::USmallInt => "SMALLINT UNSIGNED",
            Self::UInt => "INT UNSIGNED",
            Self::UBigInt => "BIGINT UNSIGNED",
            Self::Json => "JSON",
            Self::VarBinary => "VARBINARY",
            Self::Geometry => "GEOMETRY",
        }
    }

    /// Width in bytes of a fixed-width type, `None` for variable-width ones.
    pub fn fixed_width(self) -> Option<u32> {
        match self {
            Self::Bool | Self::TinyInt | Self::UTinyInt => Some(1),
            Self::SmallInt | Self::USmallInt => Some(2),
            Self::Int | Self::UInt | Self::Float => Some(4),
            Self::BigInt | Self::UBigInt | Self::Double | Self::Timestamp => Some(8),
            Self::VarChar | Self::NChar | Self::Json | Self::VarBinary | Self::Geometry => None,
        }
    }

    pub fn is_var(self) -> bool {
        self.fixed_width().is_none()
    }
}

impl Field {
    pub fn new(name: impl Into<String>, ty: ColumnType, length: u32) -> Self {
        Self {
            name: name.into(),
            ty,
            length,
        }
    }

    /// A fixed-width field (its length is the type's width).
    pub fn fixed(name: impl Into<String>, ty: ColumnType) -> Self {
        let length = ty.fixed_width().unwrap_or(0);
        Self::new(name, ty, length)
    }

    /// The `bytes` of the column in a raw block's schema: VARCHAR(n) → n + 2, NCHAR(n) → 4n + 2.
    pub fn block_bytes(&self) -> u32 {
        match self.ty {
            ColumnType::NChar => self.length * 4 + 2,
            ColumnType::VarChar | ColumnType::VarBinary | ColumnType::Geometry | ColumnType::Json => {
                self.length + 2
            }
            ty => ty.fixed_width().unwrap_or(0),
        }
    }

    /// The field as TMQ meta JSON lists it: `{"name","type","length"?}` (length only for variable width).
    pub fn meta_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"name": self.name, "type": self.ty as u8});
        if self.ty.is_var() {
            v["length"] = self.length.into();
        }
        v
    }
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as JSON (meta JSON tag values, `SHOW` output): numbers stay numbers, text stays text,
    /// binary data becomes a hex string.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(v) => J::Bool(*v),
            Value::TinyInt(v) => (*v).into(),
            Value::SmallInt(v) => (*v).into(),
            Value::Int(v) => (*v).into(),
            Value::BigInt(v) | Value::Timestamp(v) => (*v).into(),
            Value::Float(v) => serde_json::Number::from_f64(*v as f64).map_or(J::Null, J::Number),
            Value::Double(v) => serde_json::Number::from_f64(*v).map_or(J::Null, J::Number),
            Value::VarChar(s) | Value::NChar(s) | Value::Json(s) => J::String(s.clone()),
            Value::UTinyInt(v) => (*v).into(),
            Value::USmallInt(v) => (*v).into(),
            Value::UInt(v) => (*v).into(),
            Value::UBigInt(v) => (*v).into(),
            Value::VarBinary(b) | Value::Geometry(b) => {
                J::String(b.iter().map(|x| format!("{x:02x}")).collect())
            }
        }
    }

    /// The timestamp carried by a `Timestamp` value.
    pub fn as_timestamp(&self) -> Option<i64> {
        match self {
            Value::Timestamp(t) => Some(*t),
            _ => None,
        }
    }
}

impl Precision {
    /// Parses `'ms'`, `'us'`, `'ns'`.
    pub fn from_sql(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ms" => Some(Self::Millisecond),
            "us" => Some(Self::Microsecond),
            "ns" => Some(Self::Nanosecond),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Millisecond => "ms",
            Self::Microsecond => "us",
            Self::Nanosecond => "ns",
        }
    }

    /// Units of this precision per millisecond.
    pub fn per_ms(self) -> i64 {
        match self {
            Self::Millisecond => 1,
            Self::Microsecond => 1_000,
            Self::Nanosecond => 1_000_000,
        }
    }

    /// The current time in this precision.
    pub fn now(self) -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        match self {
            Self::Millisecond => d.as_millis() as i64,
            Self::Microsecond => d.as_micros() as i64,
            Self::Nanosecond => d.as_nanos() as i64,
        }
    }
}
