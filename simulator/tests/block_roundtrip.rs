//! Property: random schemas and rows encoded by our raw block encoder decode to the same values with the
//! official client's decoder (`taos_query::RawBlock::parse_from_raw_block`, which also asserts the
//! header's exact `length` in debug builds).

use proptest::prelude::*;
use simulator::tdengine::block::encode_block;
use simulator::tdengine::types::{ColumnType, Field, Value};
use taos::taos_query::common::{Precision, RawBlock, Timestamp, Ty};

const TYPES: [ColumnType; 17] = [
    ColumnType::Bool,
    ColumnType::TinyInt,
    ColumnType::SmallInt,
    ColumnType::Int,
    ColumnType::BigInt,
    ColumnType::Float,
    ColumnType::Double,
    ColumnType::VarChar,
    ColumnType::Timestamp,
    ColumnType::NChar,
    ColumnType::UTinyInt,
    ColumnType::USmallInt,
    ColumnType::UInt,
    ColumnType::UBigInt,
    ColumnType::Json,
    ColumnType::VarBinary,
    ColumnType::Geometry,
];

fn value(ty: ColumnType) -> BoxedStrategy<Value> {
    let v = match ty {
        ColumnType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        ColumnType::TinyInt => any::<i8>().prop_map(Value::TinyInt).boxed(),
        ColumnType::SmallInt => any::<i16>().prop_map(Value::SmallInt).boxed(),
        ColumnType::Int => any::<i32>().prop_map(Value::Int).boxed(),
        ColumnType::BigInt => any::<i64>().prop_map(Value::BigInt).boxed(),
        ColumnType::Float => prop::num::f32::NORMAL.prop_map(Value::Float).boxed(),
        ColumnType::Double => prop::num::f64::NORMAL.prop_map(Value::Double).boxed(),
        ColumnType::VarChar => ".{0,20}".prop_map(Value::VarChar).boxed(),
        ColumnType::Timestamp => any::<i64>().prop_map(Value::Timestamp).boxed(),
        ColumnType::NChar => ".{0,20}".prop_map(Value::NChar).boxed(),
        ColumnType::UTinyInt => any::<u8>().prop_map(Value::UTinyInt).boxed(),
        ColumnType::USmallInt => any::<u16>().prop_map(Value::USmallInt).boxed(),
        ColumnType::UInt => any::<u32>().prop_map(Value::UInt).boxed(),
        ColumnType::UBigInt => any::<u64>().prop_map(Value::UBigInt).boxed(),
        ColumnType::Json => ("[a-z]{1,8}", any::<i32>())
            .prop_map(|(k, v)| Value::Json(serde_json::json!({ k: v }).to_string()))
            .boxed(),
        ColumnType::VarBinary => prop::collection::vec(any::<u8>(), 0..20)
            .prop_map(Value::VarBinary)
            .boxed(),
        ColumnType::Geometry => prop::collection::vec(any::<u8>(), 0..20)
            .prop_map(Value::Geometry)
            .boxed(),
    };
    prop_oneof![1 => Just(Value::Null), 4 => v].boxed()
}

fn schema_and_rows() -> impl Strategy<Value = (Vec<Field>, Vec<Vec<Value>>)> {
    prop::collection::vec(prop::sample::select(TYPES.to_vec()), 1..8).prop_flat_map(|types| {
        let fields: Vec<Field> = types
            .iter()
            .enumerate()
            .map(|(i, ty)| match ty.fixed_width() {
                Some(_) => Field::fixed(format!("c{i}"), *ty),
                None => Field::new(format!("c{i}"), *ty, 80),
            })
            .collect();
        let row: Vec<BoxedStrategy<Value>> = types.iter().map(|t| value(*t)).collect();
        (Just(fields), prop::collection::vec(row, 0..40))
    })
}

fn ty(t: ColumnType) -> Ty {
    Ty::from(t as u8)
}

/// Our value as the official client represents it.
fn expected(f: &Field, v: &Value) -> taos::Value {
    use taos::Value as T;
    match v {
        Value::Null => T::Null(ty(f.ty)),
        Value::Bool(x) => T::Bool(*x),
        Value::TinyInt(x) => T::TinyInt(*x),
        Value::SmallInt(x) => T::SmallInt(*x),
        Value::Int(x) => T::Int(*x),
        Value::BigInt(x) => T::BigInt(*x),
        Value::Float(x) => T::Float(*x),
        Value::Double(x) => T::Double(*x),
        Value::VarChar(s) => T::VarChar(s.clone()),
        Value::Timestamp(x) => T::Timestamp(Timestamp::Milliseconds(*x)),
        Value::NChar(s) => T::NChar(s.clone()),
        Value::UTinyInt(x) => T::UTinyInt(*x),
        Value::USmallInt(x) => T::USmallInt(*x),
        Value::UInt(x) => T::UInt(*x),
        Value::UBigInt(x) => T::UBigInt(*x),
        Value::Json(s) => T::Json(serde_json::from_str(s).unwrap()),
        Value::VarBinary(b) => T::VarBinary(b.clone().into()),
        Value::Geometry(b) => T::Geometry(b.clone().into()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encoded_blocks_decode_identically((fields, rows) in schema_and_rows()) {
        let bytes = encode_block(&fields, &rows);
        let header_len = i32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        prop_assert_eq!(header_len, bytes.len());
        let mut block = RawBlock::parse_from_raw_block(bytes, Precision::Millisecond);
        // As the client does after every fetch: row views read the names.
        block.with_field_names(fields.iter().map(|f| f.name.as_str()));
        prop_assert_eq!(block.nrows(), rows.len());
        prop_assert_eq!(block.ncols(), fields.len());
        for (c, f) in fields.iter().enumerate() {
            let schema = block.schemas()[c].into_bytes();
            prop_assert_eq!(schema[0], f.ty as u8);
            prop_assert_eq!(u32::from_le_bytes(schema[1..5].try_into().unwrap()), f.block_bytes());
        }
        let decoded = block.to_values();
        prop_assert_eq!(decoded.len(), rows.len());
        for (r, (got, want)) in decoded.iter().zip(&rows).enumerate() {
            for (c, f) in fields.iter().enumerate() {
                prop_assert_eq!(&got[c], &expected(f, &want[c]), "row {} column {} ({:?})", r, c, f.ty);
            }
        }
    }
}
