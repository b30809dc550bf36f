//! `CREATE TOPIC` (a database, a super table, or a query over one table) and `DROP TOPIC`. A query topic
//! is resolved here, once, into its projection and result fields; TMQ projects WAL rows through it.

use super::db_of;
use crate::tdengine::catalog::{now_ms, Catalog, Database, TopicEntry};
use crate::tdengine::error::{code, TdError, TdResult};
use crate::tdengine::sql::ast::{Expr, QualName, SelectItem, TopicSource};
use crate::tdengine::store::QueryResult;
use crate::tdengine::topic::{tbname_field, TopicDef, TopicKind};
use crate::tdengine::types::Field;

pub(super) fn create_topic(
    cat: &mut Catalog,
    if_not_exists: bool,
    name: String,
    with_meta: bool,
    source: TopicSource,
    sql: String,
    current: &Option<String>,
) -> TdResult<QueryResult> {
    if cat.topics.contains_key(&name) {
        return if if_not_exists {
            Ok(QueryResult::affected(0))
        } else {
            Err(TdError::new(
                code::TOPIC_ALREADY_EXIST,
                format!("Topic already exists: {name}"),
            ))
        };
    }
    let (db, kind) = match source {
        TopicSource::Database(db) => {
            cat.db(&db)?;
            (db, TopicKind::Database)
        }
        TopicSource::Stable { name: st, filter } => {
            let db = db_of(&st, current)?.to_string();
            if !cat.db(&db)?.stables.contains_key(&st.name) {
                return Err(TdError::stable_not_exist(&st.name));
            }
            (
                db,
                TopicKind::Stable {
                    name: st.name,
                    filter,
                },
            )
        }
        TopicSource::Query { items, from, filter } => {
            let db = db_of(&from, current)?.to_string();
            let kind = query_topic(cat.db(&db)?, items, from, filter)?;
            (db, kind)
        }
    };
    cat.topics.insert(
        name.clone(),
        TopicEntry {
            def: TopicDef {
                name,
                db,
                kind,
                with_meta,
                sql,
                created_ms: now_ms(),
            },
            subscribers: 0,
        },
    );
    Ok(QueryResult::affected(0))
}

fn invalid_query(reason: &str) -> TdError {
    TdError::new(
        code::INVALID_TOPIC_QUERY,
        format!("Invalid topic query: {reason}"),
    )
}

/// `AS SELECT items FROM table [WHERE filter]` over a super table or a normal table: no aggregates.
fn query_topic(
    d: &Database,
    items: Vec<SelectItem>,
    from: QualName,
    filter: Option<Expr>,
) -> TdResult<TopicKind> {
    let (columns, tags, is_stable): (Vec<Field>, Vec<Field>, bool) =
        if let Some(s) = d.stables.get(&from.name) {
            (s.columns.to_vec(), s.tags.to_vec(), true)
        } else if let Some(t) = d.tables.get(&from.name) {
            if t.stable.is_some() {
                return Err(invalid_query("select from a super table or a normal table"));
            }
            (t.columns.to_vec(), vec![], false)
        } else {
            return Err(TdError::table_not_exist(&from.name));
        };
    let mut projection = Vec::new();
    let mut fields = Vec::new();
    for item in items {
        match item {
            SelectItem::Star => {
                for c in &columns {
                    projection.push(c.name.clone());
                    fields.push(c.clone());
                }
            }
            SelectItem::Count(_) | SelectItem::Func(_) => {
                return Err(invalid_query("aggregates are not allowed"));
            }
            SelectItem::Column { name: col, alias } => {
                let mut f = if col.eq_ignore_ascii_case("tbname") {
                    tbname_field()
                } else {
                    columns
                        .iter()
                        .chain(&tags)
                        .find(|f| f.name == col)
                        .cloned()
                        .ok_or_else(|| TdError::invalid_column(&col))?
                };
                if let Some(a) = alias {
                    f.name = a;
                }
                projection.push(col);
                fields.push(f);
            }
        }
    }
    Ok(TopicKind::Query {
        projection,
        fields,
        table: from.name,
        is_stable,
        filter,
    })
}

/// `DROP TOPIC`: refused while a consumer is subscribed.
pub(super) fn drop_topic(cat: &mut Catalog, if_exists: bool, name: &str) -> TdResult<QueryResult> {
    match cat.topics.get(name) {
        None if if_exists => {}
        None => return Err(TdError::topic_not_exist(name)),
        Some(t) if t.subscribers > 0 => {
            return Err(TdError::new(
                code::TOPIC_SUBSCRIBED,
                format!("Topic subscribed cannot be dropped: {name}"),
            ))
        }
        Some(_) => {
            cat.topics.remove(name);
        }
    }
    Ok(QueryResult::affected(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdengine::store::Store;

    fn run(store: &Store, sql: &str) -> TdResult<QueryResult> {
        store.execute(sql, &mut None)
    }

    #[test]
    fn a_subscribed_topic_cannot_be_dropped_and_names_are_unique() {
        let store = Store::default();
        run(&store, "create database d2 vgroups 4 precision 'us'").unwrap();
        assert_eq!(store.database("d2").unwrap().vgroups, vec![2, 3, 4, 5]);
        run(
            &store,
            "create stable d2.st (ts timestamp, v tinyint, s varchar(3), n nchar(2)) tags (g int)",
        )
        .unwrap();
        run(&store, "create topic t1 with meta as database d2").unwrap();
        assert_eq!(
            run(&store, "create topic t1 as database d2").unwrap_err().code,
            code::TOPIC_ALREADY_EXIST
        );
        run(&store, "create topic if not exists t1 as database d2").unwrap();
        assert_eq!(
            run(&store, "drop topic nope").unwrap_err().code,
            code::TOPIC_NOT_EXIST
        );
        store.acquire_topic("t1").unwrap();
        assert_eq!(
            run(&store, "drop topic t1").unwrap_err().code,
            code::TOPIC_SUBSCRIBED
        );
        store.release_topic("t1");
        run(&store, "drop topic t1").unwrap();
        run(&store, "drop topic if exists t1").unwrap();
        // stable DDL lands in every vgroup
        for vg in 2..=5 {
            assert_eq!(store.wal(vg).unwrap().lock().last_version(), 1);
        }
    }

    #[test]
    fn a_query_topic_resolves_its_fields_and_refuses_aggregates_and_child_tables() {
        let store = Store::default();
        run(
            &store,
            "create database d vgroups 1; create stable d.s (ts timestamp, v int) tags (g int); \
             create table d.c using d.s tags (1)",
        )
        .unwrap();
        run(
            &store,
            "create topic q as select ts, v as value, tbname, g from d.s where g = 1",
        )
        .unwrap();
        let TopicKind::Query {
            projection,
            fields,
            is_stable,
            ..
        } = store.topic("q").unwrap().kind
        else {
            panic!("a query topic")
        };
        assert_eq!(projection, ["ts", "v", "tbname", "g"]);
        let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["ts", "value", "tbname", "g"]);
        assert!(is_stable);
        let code_of = |sql: &str| run(&store, sql).unwrap_err().code;
        assert_eq!(
            code_of("create topic a as select count(*) from d.s"),
            code::INVALID_TOPIC_QUERY
        );
        assert_eq!(
            code_of("create topic a as select * from d.c"),
            code::INVALID_TOPIC_QUERY
        );
        assert_eq!(
            code_of("create topic a as select nope from d.s"),
            code::INVALID_COLUMN
        );
        assert_eq!(code_of("create topic a as stable d.nope"), code::STB_NOT_EXIST);
        assert_eq!(code_of("create topic a as database nope"), code::DB_NOT_EXIST);
    }
}
