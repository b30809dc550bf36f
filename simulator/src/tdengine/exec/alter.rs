//! `ALTER TABLE`/`ALTER STABLE`: add or drop a column (normal and super tables; a super table's children
//! follow), add or drop a tag (super tables), set a tag value (child tables). Stored rows and tags are
//! reshaped in place and one `alter` meta event is logged.

use std::sync::Arc;

use super::ddl::json_column;
use super::meta_json::{self, AlterType};
use super::values::convert;
use crate::tdengine::catalog::{Catalog, Database};
use crate::tdengine::error::{code, TdError, TdResult};
use crate::tdengine::sql::ast::{AlterAction, Lit};
use crate::tdengine::store::QueryResult;
use crate::tdengine::types::{ColumnType, Field, Precision, Value};
use crate::tdengine::wal::MetaKind;

pub(super) fn alter(
    cat: &mut Catalog,
    stable_kw: bool,
    db: &str,
    name: &str,
    action: AlterAction,
) -> TdResult<QueryResult> {
    let d = cat.db_mut(db)?;
    let target = Target::resolve(d, stable_kw, name)?;
    let json = match action {
        AlterAction::AddColumn(f) | AlterAction::AddTag(f) if target.has(&f.name) => {
            return Err(TdError::new(
                code::COLUMN_ALREADY_EXIST,
                format!("Column already exists: {}", f.name),
            ));
        }
        AlterAction::AddColumn(f) => target.add_column(d, f)?,
        AlterAction::DropColumn(n) => target.drop_column(d, &n)?,
        AlterAction::AddTag(f) => target.add_tag(d, f)?,
        AlterAction::DropTag(n) => target.drop_tag(d, &n)?,
        AlterAction::SetTag { name: tag, value } => target.set_tag(d, &tag, &value)?,
    };
    let (vgroups, table) = match target.kind {
        Kind::Super => (d.vgroups.clone(), None),
        Kind::Child | Kind::Normal => (vec![d.tables[name].vgroup], Some(name)),
    };
    meta_json::append(
        cat,
        &vgroups,
        db,
        target.stable.as_deref(),
        table,
        MetaKind::Alter,
        json,
    );
    Ok(QueryResult::affected(0))
}

/// What kind of table an `ALTER` changes (the `tableType` of its meta event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Super,
    Child,
    Normal,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Super => "super",
            Kind::Child => "child",
            Kind::Normal => "normal",
        }
    }
}

/// The table an `ALTER` changes, with its schema before the change.
struct Target {
    name: String,
    kind: Kind,
    /// The super table: the table itself, or a child's.
    stable: Option<String>,
    precision: Precision,
    columns: Vec<Field>,
    tags: Vec<Field>,
    /// The tables whose rows and tags change: a super table's children, or the table itself.
    tables: Vec<String>,
}

fn refused(reason: &str) -> TdError {
    TdError::new(code::SYNTAX_ERROR, format!("syntax error: {reason}"))
}

impl Target {
    fn resolve(d: &Database, stable_kw: bool, name: &str) -> TdResult<Target> {
        let target = |kind, stable, columns, tags, tables| Target {
            name: name.to_string(),
            kind,
            stable,
            precision: d.precision,
            columns,
            tags,
            tables,
        };
        if let Some(s) = d.stables.get(name) {
            let children = d.children_of(name).map(|(n, _)| n.clone()).collect();
            return Ok(target(
                Kind::Super,
                Some(name.to_string()),
                s.columns.to_vec(),
                s.tags.to_vec(),
                children,
            ));
        }
        if stable_kw {
            return Err(TdError::stable_not_exist(name));
        }
        let t = d.tables.get(name).ok_or_else(|| TdError::table_not_exist(name))?;
        let kind = if t.stable.is_some() {
            Kind::Child
        } else {
            Kind::Normal
        };
        Ok(target(
            kind,
            t.stable.clone(),
            t.columns.to_vec(),
            t.tag_fields(),
            vec![name.to_string()],
        ))
    }

    fn has(&self, name: &str) -> bool {
        self.columns.iter().chain(&self.tags).any(|f| f.name == name)
    }

    fn event(&self, alter_type: AlterType, f: &Field) -> serde_json::Value {
        meta_json::alter(self.kind.as_str(), &self.name, alter_type, f)
    }

    fn add_column(&self, d: &mut Database, f: Field) -> TdResult<serde_json::Value> {
        if self.kind == Kind::Child {
            return Err(refused("cannot add a column to a child table"));
        }
        if f.ty == ColumnType::Json {
            return Err(json_column());
        }
        let json = self.event(AlterType::AddColumn, &f);
        let mut columns = self.columns.clone();
        columns.push(f);
        self.set_columns(d, columns, |row| row.push(Value::Null));
        Ok(json)
    }

    fn drop_column(&self, d: &mut Database, name: &str) -> TdResult<serde_json::Value> {
        let i =
            self.columns.iter().position(|f| f.name == name).ok_or_else(|| {
                TdError::new(code::COLUMN_NOT_EXIST, format!("Column does not exist: {name}"))
            })?;
        if i == 0 {
            return Err(refused("the timestamp column cannot be dropped"));
        }
        if self.kind == Kind::Child {
            return Err(refused("cannot drop a column of a child table"));
        }
        let json = self.event(AlterType::DropColumn, &self.columns[i]);
        let mut columns = self.columns.clone();
        columns.remove(i);
        self.set_columns(d, columns, |row| {
            row.remove(i);
        });
        Ok(json)
    }

    /// Installs the new column list on the super table (if any) and every affected table, reshaping rows.
    fn set_columns(&self, d: &mut Database, columns: Vec<Field>, reshape: impl Fn(&mut Vec<Value>)) {
        let columns = Arc::new(columns);
        if let Some(s) = d.stables.get_mut(&self.name) {
            s.columns = columns.clone();
        }
        for name in &self.tables {
            let t = d.tables.get_mut(name).expect("listed");
            t.columns = columns.clone();
            t.rows.values_mut().for_each(&reshape);
        }
    }

    fn add_tag(&self, d: &mut Database, f: Field) -> TdResult<serde_json::Value> {
        if self.kind != Kind::Super {
            return Err(refused("tags can only be added to a super table"));
        }
        let json = self.event(AlterType::AddTag, &f);
        let mut tags = self.tags.clone();
        tags.push(f.clone());
        self.set_tags(d, tags, |values| values.push((f.clone(), Value::Null)));
        Ok(json)
    }

    fn drop_tag(&self, d: &mut Database, name: &str) -> TdResult<serde_json::Value> {
        if self.kind != Kind::Super {
            return Err(refused("tags can only be dropped from a super table"));
        }
        let i = self
            .tags
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| TdError::new(code::TAG_NOT_EXIST, format!("Tag does not exist: {name}")))?;
        if self.tags.len() == 1 {
            return Err(refused("a super table needs at least one tag"));
        }
        let json = self.event(AlterType::DropTag, &self.tags[i]);
        let mut tags = self.tags.clone();
        tags.remove(i);
        self.set_tags(d, tags, |values| {
            values.remove(i);
        });
        Ok(json)
    }

    /// Installs the new tag list on the super table and reshapes its children's tag values.
    fn set_tags(&self, d: &mut Database, tags: Vec<Field>, reshape: impl Fn(&mut Vec<(Field, Value)>)) {
        d.stables.get_mut(&self.name).expect("is stable").tags = Arc::new(tags);
        for name in &self.tables {
            let t = d.tables.get_mut(name).expect("listed");
            let mut values = t.tags.to_vec();
            reshape(&mut values);
            t.tags = Arc::new(values);
        }
    }

    fn set_tag(&self, d: &mut Database, tag: &str, value: &Lit) -> TdResult<serde_json::Value> {
        if self.kind != Kind::Child {
            return Err(refused("SET TAG applies to a child table"));
        }
        let i = self
            .tags
            .iter()
            .position(|f| f.name == tag)
            .ok_or_else(|| TdError::new(code::INVALID_TAG_NAME, format!("Invalid tag name: {tag}")))?;
        let v = convert(value, &self.tags[i], self.precision, self.precision.now())?;
        let json = meta_json::set_tag(&self.name, &self.tags[i], &v);
        let t = d.tables.get_mut(&self.name).expect("exists");
        let mut values = t.tags.to_vec();
        values[i].1 = v;
        t.tags = Arc::new(values);
        Ok(json)
    }
}

#[cfg(test)]
mod tests {
    use crate::tdengine::error::code;
    use crate::tdengine::store::Store;
    use crate::tdengine::types::Value;
    use crate::tdengine::wal::WalOp;

    fn last_meta(store: &Store, vgroup: i32) -> serde_json::Value {
        let wal = store.wal(vgroup).unwrap();
        let wal = wal.lock();
        let last = wal.read_from(0).last().unwrap();
        let WalOp::Meta(m) = &last.op else {
            panic!("{:?}", last.op)
        };
        m.json.clone()
    }

    #[test]
    fn columns_and_tags_of_a_stable_reshape_its_children_and_log_in_every_vgroup() {
        let store = Store::default();
        let run = |sql: &str| store.execute(sql, &mut None);
        run("create database d vgroups 2; create stable d.s (ts timestamp, a int) tags (g int)").unwrap();
        run("insert into d.c using d.s tags (7) values (1, 10)").unwrap();
        run("alter stable d.s add column b float").unwrap();
        run("alter stable d.s add tag h int").unwrap();
        let r = run("select * from d.s").unwrap();
        let names: Vec<_> = r.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["ts", "a", "b", "g", "h"]);
        assert_eq!(
            r.rows,
            vec![vec![
                Value::Timestamp(1),
                Value::Int(10),
                Value::Null,
                Value::Int(7),
                Value::Null
            ]]
        );
        for vg in [2, 3] {
            let j = last_meta(&store, vg);
            assert_eq!(
                (j["alterType"].clone(), j["colName"].clone()),
                (1.into(), "h".into()),
                "vgroup {vg}"
            );
        }
        run("alter stable d.s drop column a").unwrap();
        run("alter stable d.s drop tag g").unwrap();
        let r = run("select * from d.s").unwrap();
        assert_eq!(r.rows, vec![vec![Value::Timestamp(1), Value::Null, Value::Null]]);
        let code_of = |sql: &str| run(sql).unwrap_err().code;
        assert_eq!(
            code_of("alter stable d.s add column b int"),
            code::COLUMN_ALREADY_EXIST
        );
        assert_eq!(
            code_of("alter stable d.s drop column nope"),
            code::COLUMN_NOT_EXIST
        );
        assert_eq!(code_of("alter stable d.s drop column ts"), code::SYNTAX_ERROR);
        assert_eq!(code_of("alter stable d.s drop tag nope"), code::TAG_NOT_EXIST);
        assert_eq!(
            code_of("alter stable d.s drop tag h"),
            code::SYNTAX_ERROR,
            "the last tag stays"
        );
        assert_eq!(
            code_of("alter stable d.s add column j json"),
            code::WRONG_VALUE_TYPE
        );
        assert_eq!(code_of("alter stable d.c add column x int"), code::STB_NOT_EXIST);
        assert_eq!(code_of("alter table d.c add column x int"), code::SYNTAX_ERROR);
        assert_eq!(
            code_of("alter table d.nope add column x int"),
            code::TABLE_NOT_EXIST
        );
    }

    #[test]
    fn set_tag_changes_one_child_and_logs_in_its_vgroup() {
        let store = Store::default();
        let run = |sql: &str| store.execute(sql, &mut None);
        run("create database d vgroups 1; create stable d.s (ts timestamp, a int) tags (g int, n nchar(4))")
            .unwrap();
        run("create table d.c using d.s tags (1, 'x'); create table d.t (ts timestamp, a int)").unwrap();
        run("alter table d.c set tag n = 'yz'").unwrap();
        let j = last_meta(&store, 2);
        assert_eq!(j["tableType"], "child");
        assert_eq!(j["colValue"], "yz");
        let tags = store.table("d", "c").unwrap().tags;
        assert_eq!(tags[1].1, Value::NChar("yz".into()));
        let code_of = |sql: &str| run(sql).unwrap_err().code;
        assert_eq!(
            code_of("alter table d.c set tag nope = 1"),
            code::INVALID_TAG_NAME
        );
        assert_eq!(
            code_of("alter table d.c set tag n = 'toolong'"),
            code::VALUE_TOO_LONG
        );
        assert_eq!(code_of("alter table d.t set tag g = 1"), code::SYNTAX_ERROR);
        assert_eq!(code_of("alter table d.t add tag h int"), code::SYNTAX_ERROR);
        run("alter table d.t add column b int").unwrap();
        assert_eq!(last_meta(&store, 2)["tableType"], "normal");
    }
}
