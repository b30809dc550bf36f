//! Topic definitions (`CREATE TOPIC`) as the store keeps them, and what TMQ needs to serve them: which
//! tables a topic covers and the projection of a query topic.

use std::sync::Arc;

use super::sql::ast::Expr;
use super::types::{ColumnType, Field, Value};
use super::wal::TableRows;

/// A topic as created by `CREATE TOPIC`.
#[derive(Debug, Clone)]
pub struct TopicDef {
    pub name: String,
    pub db: String,
    pub kind: TopicKind,
    pub with_meta: bool,
    /// The statement as written (`SHOW TOPICS`).
    pub sql: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone)]
pub enum TopicKind {
    /// `AS SELECT <projection> FROM db.table [WHERE filter]`. `projection` names columns, tags and
    /// `tbname` in select order (`*` already expanded to the columns); `fields` are their types.
    Query {
        projection: Vec<String>,
        fields: Vec<Field>,
        /// The super table or normal table selected from.
        table: String,
        is_stable: bool,
        filter: Option<Expr>,
    },
    /// `AS STABLE db.st [WHERE filter]`.
    Stable { name: String, filter: Option<Expr> },
    /// `AS DATABASE db`.
    Database,
}

/// Rows of one table shaped for a topic (a query topic's projection, or all columns).
#[derive(Debug, Clone)]
pub struct ProjectedRows {
    pub fields: Vec<Field>,
    pub rows: Vec<Vec<Value>>,
}

impl TopicDef {
    /// Whether rows of `rows.table` belong to this topic (database, table/super table, tag filter).
    pub fn covers(&self, rows: &TableRows) -> bool {
        if rows.db != self.db {
            return false;
        }
        match &self.kind {
            TopicKind::Database => true,
            TopicKind::Stable { name, filter } => {
                rows.stable.as_deref() == Some(name)
                    && filter
                        .as_ref()
                        .is_none_or(|f| f.matches_tags(&rows.table, &rows.tags))
            }
            TopicKind::Query {
                table,
                is_stable,
                filter,
                ..
            } => {
                let hit = if *is_stable {
                    rows.stable.as_deref() == Some(table)
                } else {
                    rows.stable.is_none() && &rows.table == table
                };
                hit && filter
                    .as_ref()
                    .is_none_or(|f| f.matches_tags(&rows.table, &rows.tags))
            }
        }
    }

    /// The rows a subscriber of this topic receives for `rows`, or `None` when the table is not covered.
    /// Query topics get their projection (columns, tags, `tbname`) in select order; the other kinds get
    /// every column as written. A column dropped since the topic was created reads as NULL.
    pub fn project(&self, rows: &TableRows) -> Option<ProjectedRows> {
        if !self.covers(rows) {
            return None;
        }
        let TopicKind::Query {
            projection, fields, ..
        } = &self.kind
        else {
            return Some(ProjectedRows {
                fields: rows.columns.as_ref().clone(),
                rows: rows.rows.clone(),
            });
        };
        enum Src {
            Col(usize),
            Const(Value),
        }
        let srcs: Vec<Src> = projection
            .iter()
            .map(|name| {
                if name.eq_ignore_ascii_case("tbname") {
                    return Src::Const(Value::VarChar(rows.table.clone()));
                }
                if let Some(i) = rows.columns.iter().position(|c| &c.name == name) {
                    return Src::Col(i);
                }
                Src::Const(
                    rows.tags
                        .iter()
                        .find(|(f, _)| &f.name == name)
                        .map_or(Value::Null, |(_, v)| v.clone()),
                )
            })
            .collect();
        let out = rows
            .rows
            .iter()
            .map(|r| {
                srcs.iter()
                    .map(|s| match s {
                        Src::Col(i) => r.get(*i).cloned().unwrap_or(Value::Null),
                        Src::Const(v) => v.clone(),
                    })
                    .collect()
            })
            .collect();
        Some(ProjectedRows {
            fields: fields.clone(),
            rows: out,
        })
    }
}

/// The field `tbname` has in results: `VARCHAR(192)` as TDengine reports it.
pub fn tbname_field() -> Field {
    Field::new("tbname", ColumnType::VarChar, 192)
}

/// The shared subscriber count of a topic (TMQ increments it; `DROP TOPIC` refuses while it is > 0).
pub type Subscribers = Arc<std::sync::atomic::AtomicUsize>;
