//! `SELECT`: from a normal, child or super table (columns, tags, `tbname`, `COUNT`, a `WHERE` filter,
//! `ORDER BY` columns, tags, `tbname` or aliases, `LIMIT`/`OFFSET`), and without `FROM` for `SERVER_VERSION()`, `DATABASE()`,
//! `NOW()` and friends.

use std::cmp::Ordering;
use std::sync::Arc;

use super::db_of;
use super::show::{ts_field, varchar};
use crate::tdengine::catalog::{now_ms, Catalog, Database, Table};
use crate::tdengine::error::{code, TdError, TdResult};
use crate::tdengine::eval::Env;
use crate::tdengine::sql::ast::{Select, SelectItem};
use crate::tdengine::store::{QueryResult, Store};
use crate::tdengine::topic::tbname_field;
use crate::tdengine::types::{ColumnType, Field, Precision, Value};

fn invalid_function(f: &str) -> TdError {
    TdError::new(code::INVALID_FUNCTION, format!("Invalid function name: {f}"))
}

/// `SELECT SERVER_VERSION(), DATABASE(), NOW(), …` without a table.
pub(super) fn functions(store: &Store, sel: &Select, current: &Option<String>) -> TdResult<QueryResult> {
    let mut fields = Vec::new();
    let mut row = Vec::new();
    for item in &sel.items {
        let SelectItem::Func(f) = item else {
            unreachable!("parser only omits FROM for functions")
        };
        let label = format!("{f}()");
        let (field, value) = match f.as_str() {
            "server_version" | "client_version" => {
                (varchar(&label, 64), Value::VarChar(store.server_version()))
            }
            "database" => (
                varchar(&label, 64),
                current.clone().map_or(Value::Null, Value::VarChar),
            ),
            "server_status" => (Field::fixed(label, ColumnType::Int), Value::Int(1)),
            "now" | "today" => {
                let ms = now_ms();
                let v = if f == "today" {
                    ms - ms.rem_euclid(86_400_000)
                } else {
                    ms
                };
                (ts_field(&label), Value::Timestamp(v))
            }
            _ => return Err(invalid_function(f)),
        };
        fields.push(field);
        row.push(value);
    }
    Ok(QueryResult::rows(fields, vec![row]))
}

pub(super) fn select(cat: &Catalog, sel: &Select, current: &Option<String>) -> TdResult<QueryResult> {
    let from = sel.from.as_ref().expect("dispatched on from");
    let d = cat.db(db_of(from, current)?)?;
    let precision = d.precision;
    let source = Source::resolve(d, &from.name)?;
    let out = Output::plan(sel, &source)?;
    let order = order_keys(sel, &source, &out.fields)?;
    let (counted, rows) = scan(sel, &source, &out, &order, precision);
    if let Some(c) = out.count {
        let label = match c {
            None => "count(*)".to_string(),
            Some(i) => format!("count({})", source.columns[i].name),
        };
        return Ok(QueryResult {
            fields: vec![Field::fixed(label, ColumnType::BigInt)],
            precision,
            rows: vec![vec![Value::BigInt(counted as i64)]],
            affected_rows: 0,
        });
    }
    Ok(QueryResult {
        fields: out.fields,
        precision,
        rows: page(sel, &order, rows),
        affected_rows: 0,
    })
}

/// What a select reads: the schema and the tables (a super table's children sorted by name).
struct Source<'a> {
    columns: Arc<Vec<Field>>,
    tag_fields: Vec<Field>,
    tables: Vec<(&'a String, &'a Table)>,
    is_stable: bool,
}

impl<'a> Source<'a> {
    fn resolve(d: &'a Database, name: &'a str) -> TdResult<Source<'a>> {
        if let Some(s) = d.stables.get(name) {
            let mut tables: Vec<_> = d.children_of(name).collect();
            tables.sort_by(|a, b| a.0.cmp(b.0));
            return Ok(Source {
                columns: s.columns.clone(),
                tag_fields: s.tags.to_vec(),
                tables,
                is_stable: true,
            });
        }
        let (n, t) = d
            .tables
            .get_key_value(name)
            .ok_or_else(|| TdError::table_not_exist(name))?;
        Ok(Source {
            columns: t.columns.clone(),
            tag_fields: t.tag_fields(),
            tables: vec![(n, t)],
            is_stable: false,
        })
    }
}

/// Where one output column comes from.
enum ColumnOrigin {
    Col(usize),
    Tag(usize),
    Tbname,
}

impl ColumnOrigin {
    fn value(&self, table: &str, t: &Table, row: &[Value]) -> Value {
        match self {
            ColumnOrigin::Col(i) => row.get(*i).cloned().unwrap_or(Value::Null),
            ColumnOrigin::Tag(i) => t.tags.get(*i).map_or(Value::Null, |(_, v)| v.clone()),
            ColumnOrigin::Tbname => Value::VarChar(table.to_string()),
        }
    }
}

/// A selected row with the values of its `ORDER BY` keys.
type Keyed = (Vec<Value>, Vec<Value>);

/// The select list resolved against the source.
struct Output {
    outs: Vec<ColumnOrigin>,
    fields: Vec<Field>,
    /// `COUNT(*)` (`Some(None)`) or `COUNT(col)` (`Some(Some(index))`).
    count: Option<Option<usize>>,
}

impl Output {
    fn plan(sel: &Select, source: &Source) -> TdResult<Output> {
        let mut out = Output {
            outs: Vec::new(),
            fields: Vec::new(),
            count: None,
        };
        for item in &sel.items {
            match item {
                SelectItem::Star => out.star(source),
                SelectItem::Func(f) => return Err(invalid_function(f)),
                SelectItem::Count(col) => {
                    if sel.items.len() != 1 {
                        return Err(TdError::new(
                            code::NOT_SINGLE_GROUP,
                            "Not a single-group group function",
                        ));
                    }
                    out.count = Some(match col {
                        None => None,
                        Some(c) => Some(
                            source
                                .columns
                                .iter()
                                .position(|f| &f.name == c)
                                .ok_or_else(|| TdError::invalid_column(c))?,
                        ),
                    });
                }
                SelectItem::Column { name, alias } => out.column(source, name, alias.as_deref())?,
            }
        }
        Ok(out)
    }

    /// `*`: every column, then (of a super table) every tag.
    fn star(&mut self, source: &Source) {
        for (i, c) in source.columns.iter().enumerate() {
            self.outs.push(ColumnOrigin::Col(i));
            self.fields.push(c.clone());
        }
        if source.is_stable {
            for (i, t) in source.tag_fields.iter().enumerate() {
                self.outs.push(ColumnOrigin::Tag(i));
                self.fields.push(t.clone());
            }
        }
    }

    fn column(&mut self, source: &Source, col: &str, alias: Option<&str>) -> TdResult<()> {
        let (o, mut f) = if col.eq_ignore_ascii_case("tbname") {
            (ColumnOrigin::Tbname, tbname_field())
        } else if let Some(i) = source.columns.iter().position(|f| f.name == col) {
            (ColumnOrigin::Col(i), source.columns[i].clone())
        } else if let Some(i) = source.tag_fields.iter().position(|f| f.name == col) {
            (ColumnOrigin::Tag(i), source.tag_fields[i].clone())
        } else {
            return Err(TdError::invalid_column(col));
        };
        if let Some(a) = alias {
            f.name = a.to_string();
        }
        self.outs.push(o);
        self.fields.push(f);
        Ok(())
    }

    fn row(&self, table: &str, t: &Table, row: &[Value]) -> Vec<Value> {
        self.outs.iter().map(|o| o.value(table, t, row)).collect()
    }
}

/// One `ORDER BY` key: a source column, tag or `tbname`, or an output column named by its alias.
enum OrderKey {
    Source(ColumnOrigin),
    Output(usize),
}

/// The `ORDER BY` keys (most significant first), each with its direction (`true`: descending).
fn order_keys(sel: &Select, source: &Source, fields: &[Field]) -> TdResult<Vec<(OrderKey, bool)>> {
    sel.order_by
        .iter()
        .map(|(col, desc)| {
            let key = if col.eq_ignore_ascii_case("tbname") {
                OrderKey::Source(ColumnOrigin::Tbname)
            } else if let Some(i) = source.columns.iter().position(|f| &f.name == col) {
                OrderKey::Source(ColumnOrigin::Col(i))
            } else if let Some(i) = source.tag_fields.iter().position(|f| &f.name == col) {
                OrderKey::Source(ColumnOrigin::Tag(i))
            } else if let Some(i) = fields.iter().position(|f| &f.name == col) {
                OrderKey::Output(i)
            } else {
                return Err(TdError::invalid_column(col));
            };
            Ok((key, *desc))
        })
        .collect()
}

/// The order of two values of one `ORDER BY` key: NULL first (TDengine's default for ASC), numbers by
/// value, text and bytes lexicographically.
fn order_values(a: &Value, b: &Value) -> Ordering {
    fn num(v: &Value) -> Option<f64> {
        Some(match v {
            Value::Bool(x) => *x as u8 as f64,
            Value::TinyInt(x) => *x as f64,
            Value::SmallInt(x) => *x as f64,
            Value::Int(x) => *x as f64,
            Value::Float(x) => *x as f64,
            Value::Double(x) => *x,
            Value::UTinyInt(x) => *x as f64,
            Value::USmallInt(x) => *x as f64,
            Value::UInt(x) => *x as f64,
            _ => return None,
        })
    }
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Timestamp(x), Value::Timestamp(y)) | (Value::BigInt(x), Value::BigInt(y)) => x.cmp(y),
        (Value::UBigInt(x), Value::UBigInt(y)) => x.cmp(y),
        (
            Value::VarChar(x) | Value::NChar(x) | Value::Json(x),
            Value::VarChar(y) | Value::NChar(y) | Value::Json(y),
        ) => x.cmp(y),
        (Value::VarBinary(x) | Value::Geometry(x), Value::VarBinary(y) | Value::Geometry(y)) => x.cmp(y),
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

/// The rows passing the filter with their sort keys, table by table (or only their count for `COUNT`).
fn scan(
    sel: &Select,
    source: &Source,
    out: &Output,
    order: &[(OrderKey, bool)],
    precision: Precision,
) -> (usize, Vec<Keyed>) {
    let now = precision.now();
    let (lo, hi) = sel.filter.as_ref().map_or((i64::MIN, i64::MAX), |f| {
        f.ts_bounds(&source.columns[0].name, precision, now)
    });
    let mut counted = 0usize;
    let mut rows = Vec::new();
    if lo > hi {
        return (counted, rows);
    }
    for (tn, t) in &source.tables {
        for (_, row) in t.rows.range(lo..=hi) {
            if let Some(f) = &sel.filter {
                let env = Env {
                    table: tn,
                    tags: &t.tags,
                    columns: &t.columns,
                    row: Some(row),
                    precision,
                    now,
                };
                if f.eval(&env) != Some(true) {
                    continue;
                }
            }
            match out.count {
                Some(c) => {
                    if c.is_none_or(|i| !row[i].is_null()) {
                        counted += 1;
                    }
                }
                None => {
                    let values = out.row(tn, t, row);
                    let keys = order
                        .iter()
                        .map(|(k, _)| match k {
                            OrderKey::Source(o) => o.value(tn, t, row),
                            OrderKey::Output(i) => values[*i].clone(),
                        })
                        .collect();
                    rows.push((keys, values));
                }
            }
        }
    }
    (counted, rows)
}

/// `ORDER BY`, then `OFFSET` and `LIMIT`.
fn page(sel: &Select, order: &[(OrderKey, bool)], mut rows: Vec<Keyed>) -> Vec<Vec<Value>> {
    if !order.is_empty() {
        rows.sort_by(|(a, _), (b, _)| {
            a.iter()
                .zip(b)
                .zip(order)
                .map(|((x, y), (_, desc))| match desc {
                    true => order_values(x, y).reverse(),
                    false => order_values(x, y),
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
    }
    let offset = sel.offset.unwrap_or(0) as usize;
    let limit = sel.limit.map_or(usize::MAX, |l| l as usize);
    rows.into_iter()
        .skip(offset)
        .take(limit)
        .map(|(_, r)| r)
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::tdengine::error::code;
    use crate::tdengine::store::Store;
    use crate::tdengine::types::Value;

    #[test]
    fn star_of_a_stable_adds_tags_and_count_respects_the_filter() {
        let store = Store::default();
        let run = |sql: &str| store.execute(sql, &mut None);
        run("create database d2 vgroups 4 precision 'us'").unwrap();
        run("create stable d2.st (ts timestamp, v tinyint, s varchar(3), n nchar(2)) tags (g int)").unwrap();
        run("insert into d2.c1 using d2.st tags(1) values(1, 1, 'a', '北京') (0, 3, null, null)").unwrap();
        run("insert into d2.c2 using d2.st tags(2) values(5, 4, 'b', null)").unwrap();
        let r = run("select * from d2.st order by ts desc limit 2 offset 1").unwrap();
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.rows[0][1], Value::TinyInt(1));
        assert_eq!(r.rows[0][4], Value::Int(1), "tag column of select *");
        assert_eq!(r.rows[1][0], Value::Timestamp(0));
        let r = run("select count(*) from d2.st where g = 1 and ts > 0").unwrap();
        assert_eq!(r.rows, vec![vec![Value::BigInt(1)]]);
        let r = run("select count(s) from d2.st").unwrap();
        assert_eq!(r.fields[0].name, "count(s)");
        assert_eq!(r.rows, vec![vec![Value::BigInt(2)]]);
        let r = run("select tbname, v as x from d2.c2").unwrap();
        assert_eq!(r.fields[1].name, "x");
        assert_eq!(r.rows, vec![vec![Value::VarChar("c2".into()), Value::TinyInt(4)]]);
        let code_of = |sql: &str| run(sql).unwrap_err().code;
        assert_eq!(code_of("select count(*), v from d2.st"), code::NOT_SINGLE_GROUP);
        assert_eq!(code_of("select nope from d2.st"), code::INVALID_COLUMN);
        assert_eq!(code_of("select * from d2.st order by nope"), code::INVALID_COLUMN);
        let r = run("select tbname, v from d2.st order by tbname desc, ts").unwrap();
        let got: Vec<_> = r.rows.iter().map(|r| r[1].clone()).collect();
        assert_eq!(got, vec![Value::TinyInt(4), Value::TinyInt(3), Value::TinyInt(1)]);
        let r = run("select v as x, s from d2.st order by s, x desc").unwrap();
        let got: Vec<_> = r.rows.iter().map(|r| r[0].clone()).collect();
        assert_eq!(
            got,
            vec![Value::TinyInt(3), Value::TinyInt(1), Value::TinyInt(4)],
            "NULL first"
        );
        assert_eq!(code_of("select * from d2.nope"), code::TABLE_NOT_EXIST);
    }

    #[test]
    fn functions_without_from_answer_one_row() {
        let store = Store::default();
        store.set_server_version("3.3.6.0");
        let mut db = Some("power".to_string());
        let r = store
            .execute("select server_version(), database(), server_status()", &mut db)
            .unwrap();
        assert_eq!(
            r.rows,
            vec![vec![
                Value::VarChar("3.3.6.0".into()),
                Value::VarChar("power".into()),
                Value::Int(1)
            ]]
        );
        assert_eq!(r.fields[0].name, "server_version()");
    }
}
