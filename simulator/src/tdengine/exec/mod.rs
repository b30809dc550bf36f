//! Runs SQL against the [`Store`]: DDL and writes under the catalog's write lock (each write appending to
//! its vgroups' WALs with the meta JSON TMQ serves), reads under the read lock.
//!
//! The executor sits above the store and the [`Catalog`]: it defines [`Store::execute`] here, so the store
//! and the catalog never depend on it. One file per concern:
//!
//! - [`ddl`]: databases, super tables, normal and child tables (create, drop).
//! - [`alter`]: `ALTER TABLE`/`ALTER STABLE` column and tag changes.
//! - [`write`]: `INSERT` (validated in full before anything is stored) and `DELETE`.
//! - [`values`]: SQL literals to typed values, with TDengine's range and length checks.
//! - [`topics`]: `CREATE TOPIC` and `DROP TOPIC`.
//! - [`select`]: `SELECT` from a table or super table, and table-less `SELECT NOW()` and friends.
//! - [`show`]: `SHOW …` and `DESCRIBE`, with TDengine's column names.
//! - [`meta_json`]: the meta events (create, alter, drop, delete) that DDL appends to the WAL.

mod alter;
mod ddl;
mod meta_json;
mod select;
mod show;
mod topics;
mod values;
mod write;

#[cfg(test)]
mod fuzz;

pub use show::{consumer_fields, subscription_fields};

use super::catalog::Catalog;
use super::error::{TdError, TdResult};
use super::sql::ast::{QualName, ShowWhat, Statement};
use super::store::{QueryResult, Store};

impl Store {
    /// Runs `sql` (one or more statements separated by `;`) for a session whose current database is
    /// `current_db` (`USE db` changes it). Returns the last statement's result; stops at the first error.
    pub fn execute(&self, sql: &str, current_db: &mut Option<String>) -> TdResult<QueryResult> {
        let stmts = super::sql::parse(sql)?;
        let mut last = QueryResult::default();
        for stmt in stmts {
            last = execute(self, stmt, current_db)?;
        }
        Ok(last)
    }
}

/// Runs one statement: reads under the catalog's read lock, everything else under its write lock.
fn execute(store: &Store, stmt: Statement, current: &mut Option<String>) -> TdResult<QueryResult> {
    match stmt {
        Statement::Use(db) => {
            store.catalog.read().db(&db)?;
            *current = Some(db);
            Ok(QueryResult::affected(0))
        }
        Statement::Select(sel) if sel.from.is_none() => select::functions(store, &sel, current),
        Statement::Select(sel) => select::select(&store.catalog.read(), &sel, current),
        Statement::Show(ShowWhat::Consumers) => Ok(match store.tmq_info() {
            Some(i) => i.show_consumers(),
            None => QueryResult::rows(consumer_fields(), vec![]),
        }),
        Statement::Show(ShowWhat::Subscriptions) => Ok(match store.tmq_info() {
            Some(i) => i.show_subscriptions(),
            None => QueryResult::rows(subscription_fields(), vec![]),
        }),
        Statement::Show(what) => show::show(&store.catalog.read(), &what, current),
        Statement::Describe(name) => show::describe(&store.catalog.read(), &name, current),
        stmt => write(&mut store.catalog.write(), stmt, current),
    }
}

/// Runs one statement that changes the catalog.
fn write(cat: &mut Catalog, stmt: Statement, current: &Option<String>) -> TdResult<QueryResult> {
    match stmt {
        Statement::CreateDatabase(c) => ddl::create_database(cat, c),
        Statement::DropDatabase { if_exists, name } => ddl::drop_database(cat, if_exists, &name),
        Statement::AlterDatabase {
            name,
            wal_retention_period,
        } => ddl::alter_database(cat, &name, wal_retention_period),
        Statement::CreateStable {
            if_not_exists,
            name,
            columns,
            tags,
        } => ddl::create_stable(
            cat,
            db_of(&name, current)?,
            &name.name,
            if_not_exists,
            columns,
            tags,
        ),
        Statement::CreateTable {
            if_not_exists,
            name,
            columns,
        } => ddl::create_normal(cat, db_of(&name, current)?, &name.name, if_not_exists, columns),
        Statement::CreateChildren(children) => ddl::create_children(cat, children, current),
        Statement::Insert(tables) => write::insert(cat, tables, current),
        Statement::Alter { stable, name, action } => {
            alter::alter(cat, stable, db_of(&name, current)?, &name.name, action)
        }
        Statement::Drop {
            stable,
            if_exists,
            names,
        } => {
            for n in &names {
                ddl::drop_table(cat, stable, if_exists, db_of(n, current)?, &n.name)?;
            }
            Ok(QueryResult::affected(0))
        }
        Statement::Delete { table, filter } => {
            write::delete(cat, db_of(&table, current)?, &table.name, filter.as_ref())
        }
        Statement::CreateTopic {
            if_not_exists,
            name,
            with_meta,
            source,
            sql,
        } => topics::create_topic(cat, if_not_exists, name, with_meta, source, sql, current),
        Statement::DropTopic { if_exists, name } => topics::drop_topic(cat, if_exists, &name),
        Statement::Use(_) | Statement::Select(_) | Statement::Show(_) | Statement::Describe(_) => {
            unreachable!("read statements are dispatched in execute")
        }
    }
}

/// The database a name refers to: its own qualifier, else the session's current database.
fn db_of<'a>(q: &'a QualName, current: &'a Option<String>) -> TdResult<&'a str> {
    q.db.as_deref()
        .or(current.as_deref())
        .ok_or_else(TdError::db_not_specified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdengine::types::Value;

    #[test]
    fn use_sets_the_current_database_and_unqualified_names_resolve_in_it() {
        let store = Store::default();
        let mut db = None;
        store.execute("create database d vgroups 1", &mut db).unwrap();
        let e = store
            .execute("create table t (ts timestamp, v int)", &mut db)
            .unwrap_err();
        assert_eq!(e.code, crate::tdengine::error::code::DB_NOT_SPECIFIED, "{e}");
        assert_eq!(
            store.execute("use nope", &mut db).unwrap_err().code,
            crate::tdengine::error::code::DB_NOT_EXIST
        );
        assert_eq!(db, None, "a failed USE keeps the current database");
        store
            .execute(
                "use d; create table t (ts timestamp, v int); insert into t values (1, 2)",
                &mut db,
            )
            .unwrap();
        assert_eq!(db.as_deref(), Some("d"));
        let r = store.execute("select v from d.t", &mut None).unwrap();
        assert_eq!(r.rows, vec![vec![Value::Int(2)]]);
    }
}
