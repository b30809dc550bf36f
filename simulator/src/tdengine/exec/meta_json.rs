//! The meta events DDL appends to the WAL, in the JSON TMQ hands to `WITH META` topics (taosx's
//! `tmq_get_json_meta` shapes: `create`, `alter`, `drop`, `delete`). Only the JSON is built here; which
//! vgroups an event goes to is the caller's decision.

use serde_json::{json, Value as Json};

use crate::tdengine::catalog::Catalog;
use crate::tdengine::types::{Field, Value};
use crate::tdengine::wal::{MetaEvent, MetaKind, WalOp};

/// Appends one meta event to each of `vgroups`.
pub(super) fn append(
    cat: &Catalog,
    vgroups: &[i32],
    db: &str,
    stable: Option<&str>,
    table: Option<&str>,
    kind: MetaKind,
    json: Json,
) {
    for &vg in vgroups {
        cat.append(
            vg,
            WalOp::Meta(MetaEvent {
                db: db.to_string(),
                stable: stable.map(str::to_string),
                table: table.map(str::to_string),
                kind,
                json: json.clone(),
            }),
        );
    }
}

fn fields(fields: &[Field]) -> Json {
    fields.iter().map(Field::meta_json).collect()
}

/// A tag value as TMQ meta JSON writes it: text quoted inside the string, numbers as numbers.
fn tag_value(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::VarChar(s) | Value::NChar(s) => json!(format!("\"{s}\"")),
        Value::Json(s) => json!(s),
        Value::VarBinary(_) | Value::Geometry(_) => {
            json!(format!("\"{}\"", v.to_json().as_str().unwrap_or("")))
        }
        _ => v.to_json(),
    }
}

pub(super) fn create_super(name: &str, columns: &[Field], tags: &[Field]) -> Json {
    json!({"type": "create", "tableType": "super", "tableName": name,
        "columns": fields(columns), "tags": fields(tags)})
}

pub(super) fn create_normal(name: &str, columns: &[Field]) -> Json {
    json!({"type": "create", "tableType": "normal", "tableName": name,
        "columns": fields(columns), "tags": []})
}

pub(super) fn create_child(name: &str, stable: &str, tags: &[(Field, Value)]) -> Json {
    let tags_json: Vec<_> = tags
        .iter()
        .map(|(f, v)| json!({"name": f.name, "type": f.ty as u8, "value": tag_value(v)}))
        .collect();
    json!({"type": "create", "tableType": "child", "tableName": name,
        "using": stable, "tagNum": tags.len(), "tags": tags_json, "createList": []})
}

pub(super) fn drop_super(name: &str) -> Json {
    json!({"type": "drop", "tableType": "super", "tableName": name})
}

pub(super) fn drop_table(name: &str) -> Json {
    json!({"type": "drop", "tableNameList": [name]})
}

/// A `DELETE` as the time range it removed.
pub(super) fn delete(name: &str, ts_name: &str, lo: i64, hi: i64) -> Json {
    json!({"type": "delete", "sql": format!("delete from `{name}` where `{ts_name}` >= {lo} and `{ts_name}` <= {hi}")})
}

/// What an `alter` event changes (TDengine's `TSDB_ALTER_TABLE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum AlterType {
    AddTag = 1,
    DropTag = 2,
    SetTagValue = 4,
    AddColumn = 5,
    DropColumn = 6,
}

/// An `alter` event of table `name` (`table_type` `super`, `child` or `normal`) about column or tag `f`.
pub(super) fn alter(table_type: &str, name: &str, alter_type: AlterType, f: &Field) -> Json {
    json!({"type": "alter", "tableType": table_type, "tableName": name,
        "alterType": alter_type as u8, "colName": f.name, "colType": f.ty as u8, "colLength": f.length})
}

/// A `SET TAG` event: [`alter`] with the new value.
pub(super) fn set_tag(name: &str, f: &Field, v: &Value) -> Json {
    let mut j = alter("child", name, AlterType::SetTagValue, f);
    j["colValue"] = match v {
        Value::Null => json!("NULL"),
        Value::VarChar(s) | Value::NChar(s) | Value::Json(s) => json!(s),
        other => json!(other.to_json().to_string()),
    };
    j["colValueNull"] = json!(v.is_null());
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdengine::types::ColumnType;

    #[test]
    fn child_tags_quote_text_inside_the_string_and_keep_numbers() {
        let tags = [
            (Field::fixed("g", ColumnType::Int), Value::Int(7)),
            (
                Field::new("loc", ColumnType::VarChar, 8),
                Value::VarChar("SF".into()),
            ),
            (Field::new("n", ColumnType::NChar, 8), Value::Null),
        ];
        let j = create_child("d0", "meters", &tags);
        assert_eq!(j["tagNum"], 3);
        assert_eq!(j["tags"][0]["value"], 7);
        assert_eq!(j["tags"][1]["value"], "\"SF\"");
        assert!(j["tags"][2]["value"].is_null());
    }

    #[test]
    fn set_tag_carries_the_value_as_text_and_its_nullness() {
        let f = Field::fixed("g", ColumnType::Int);
        let j = set_tag("d0", &f, &Value::Int(3));
        assert_eq!(j["alterType"], 4);
        assert_eq!(j["tableType"], "child");
        assert_eq!(j["colValue"], "3");
        assert_eq!(j["colValueNull"], false);
        let j = set_tag("d0", &f, &Value::Null);
        assert_eq!(j["colValue"], "NULL");
        assert_eq!(j["colValueNull"], true);
    }
}
