//! Recursive-descent parser for the SQL subset: the token helpers and the statements here, constants,
//! SELECT and WHERE expressions in [`query`]. Errors are TDengine syntax errors (0x2600) naming the
//! position and the text near it.

mod query;

use super::ast::*;
use super::lexer::{lex, unquote_str, Tok, Token};
use crate::tdengine::error::{code, TdError, TdResult};
use crate::tdengine::types::{ColumnType, Field, Precision};

/// Parses `sql` into its statements (separated by `;`; empty statements are skipped).
pub fn parse(sql: &str) -> TdResult<Vec<Statement>> {
    let mut p = Parser::new(sql)?;
    let mut out = Vec::new();
    loop {
        while p.eat_sym(";")? {}
        if p.cur.tok == Tok::End {
            return Ok(out);
        }
        let start = p.cur.start;
        let stmt = p.statement(start)?;
        out.push(stmt);
        if p.cur.tok != Tok::End && !p.is_sym(";") {
            return Err(p.error("unexpected token after statement"));
        }
    }
}

struct Parser<'a> {
    sql: &'a str,
    cur: Token,
}

impl<'a> Parser<'a> {
    fn new(sql: &'a str) -> TdResult<Self> {
        Ok(Self {
            sql,
            cur: lex(sql, 0)?,
        })
    }

    fn text(&self) -> &'a str {
        &self.sql[self.cur.start..self.cur.end]
    }

    fn advance(&mut self) -> TdResult<Token> {
        let t = self.cur;
        self.cur = lex(self.sql, t.end)?;
        Ok(t)
    }

    fn error(&self, reason: &str) -> TdError {
        if self.cur.tok == Tok::End {
            TdError::syntax(
                self.sql,
                self.cur.start,
                &format!("{reason}: unexpected end of statement"),
            )
        } else {
            TdError::syntax(self.sql, self.cur.start, reason)
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        self.cur.tok == Tok::Word && self.text().eq_ignore_ascii_case(kw)
    }

    fn eat_kw(&mut self, kw: &str) -> TdResult<bool> {
        if self.is_kw(kw) {
            self.advance()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn expect_kw(&mut self, kw: &str) -> TdResult<()> {
        if self.eat_kw(kw)? {
            Ok(())
        } else {
            Err(self.error(&format!("expected {}", kw.to_ascii_uppercase())))
        }
    }

    fn is_sym(&self, s: &str) -> bool {
        self.cur.tok == Tok::Sym && self.text() == s
    }

    fn eat_sym(&mut self, s: &str) -> TdResult<bool> {
        if self.is_sym(s) {
            self.advance()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn expect_sym(&mut self, s: &str) -> TdResult<()> {
        if self.eat_sym(s)? {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{s}'")))
        }
    }

    /// An identifier: a bare word or a `backquoted` name. Bare names are case-insensitive (lowercased).
    fn ident(&mut self) -> TdResult<String> {
        match self.cur.tok {
            Tok::Word => {
                let s = self.text().to_ascii_lowercase();
                self.advance()?;
                Ok(s)
            }
            Tok::Quoted => {
                let t = self.text();
                let s = t[1..t.len() - 1].to_string();
                self.advance()?;
                Ok(s)
            }
            _ => Err(self.error("expected a name")),
        }
    }

    fn qual_name(&mut self) -> TdResult<QualName> {
        let first = self.ident()?;
        if self.eat_sym(".")? {
            let name = self.ident()?;
            Ok(QualName {
                db: Some(first),
                name,
            })
        } else {
            Ok(QualName {
                db: None,
                name: first,
            })
        }
    }

    fn if_not_exists(&mut self) -> TdResult<bool> {
        if self.eat_kw("if")? {
            self.expect_kw("not")?;
            self.expect_kw("exists")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn if_exists(&mut self) -> TdResult<bool> {
        if self.eat_kw("if")? {
            self.expect_kw("exists")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn uint(&mut self) -> TdResult<u64> {
        if self.cur.tok == Tok::Num {
            if let Ok(v) = self.text().parse::<u64>() {
                self.advance()?;
                return Ok(v);
            }
        }
        Err(self.error("expected an unsigned integer"))
    }

    fn statement(&mut self, start: usize) -> TdResult<Statement> {
        if self.eat_kw("create")? {
            self.create(start)
        } else if self.eat_kw("drop")? {
            self.drop()
        } else if self.eat_kw("use")? {
            Ok(Statement::Use(self.ident()?))
        } else if self.eat_kw("insert")? {
            self.insert()
        } else if self.eat_kw("alter")? {
            self.alter()
        } else if self.eat_kw("delete")? {
            self.expect_kw("from")?;
            let table = self.qual_name()?;
            let filter = if self.eat_kw("where")? {
                Some(self.expr()?)
            } else {
                None
            };
            Ok(Statement::Delete { table, filter })
        } else if self.is_kw("select") {
            Ok(Statement::Select(self.select()?))
        } else if self.eat_kw("show")? {
            self.show()
        } else if self.eat_kw("describe")? || self.eat_kw("desc")? {
            Ok(Statement::Describe(self.qual_name()?))
        } else {
            Err(self.error("unknown statement"))
        }
    }

    fn create(&mut self, start: usize) -> TdResult<Statement> {
        if self.eat_kw("database")? {
            let if_not_exists = self.if_not_exists()?;
            let name = self.ident()?;
            let mut db = CreateDatabase {
                if_not_exists,
                name,
                vgroups: None,
                precision: None,
                wal_retention_period: None,
            };
            while self.cur.tok == Tok::Word {
                let opt = self.text().to_ascii_lowercase();
                let opt_pos = self.cur.start;
                self.advance()?;
                match opt.as_str() {
                    "vgroups" => {
                        let n = self.uint()?;
                        if !(1..=1024).contains(&n) {
                            return Err(TdError::new(
                                code::INVALID_DB_OPTION,
                                format!("Invalid option vgroups: {n} valid range: [1, 1024]"),
                            ));
                        }
                        db.vgroups = Some(n as u32);
                    }
                    "precision" => {
                        if self.cur.tok != Tok::Str {
                            return Err(self.error("expected 'ms', 'us' or 'ns'"));
                        }
                        let s = unquote_str(self.text());
                        db.precision = Some(Precision::from_sql(&s).ok_or_else(|| {
                            TdError::new(code::INVALID_DB_OPTION, format!("Invalid option precision: {s}"))
                        })?);
                        self.advance()?;
                    }
                    "wal_retention_period" => db.wal_retention_period = Some(self.uint()? as i64),
                    // Options the stand-in accepts and ignores (storage tuning).
                    "replica" | "buffer" | "pages" | "page_size" | "keep" | "duration" | "cachemodel"
                    | "cachesize" | "wal_level" | "wal_fsync_period" | "wal_retention_size" | "comp"
                    | "minrows" | "maxrows" | "strict" | "single_stable" | "stt_trigger" | "table_prefix"
                    | "table_suffix" | "tsdb_pagesize" | "wal_roll_period" | "wal_segment_size"
                    | "schemaless" | "keep_time_offset" => {
                        self.option_value()?;
                    }
                    _ => return Err(TdError::syntax(self.sql, opt_pos, "unknown database option")),
                }
            }
            return Ok(Statement::CreateDatabase(db));
        }
        if self.eat_kw("topic")? {
            return self.create_topic(start);
        }
        let stable = if self.eat_kw("stable")? {
            true
        } else {
            self.expect_kw("table")?;
            false
        };
        let if_not_exists = self.if_not_exists()?;
        let name = self.qual_name()?;
        if !stable && self.is_kw("using") {
            let mut children = vec![CreateChild {
                if_not_exists,
                name,
                using: self.using()?,
            }];
            // `CREATE TABLE t1 USING st TAGS(…) t2 USING st TAGS(…)` creates several.
            while self.cur.tok == Tok::Word || self.cur.tok == Tok::Quoted {
                let if_not_exists = self.if_not_exists()?;
                let name = self.qual_name()?;
                children.push(CreateChild {
                    if_not_exists,
                    name,
                    using: self.using()?,
                });
            }
            return Ok(Statement::CreateChildren(children));
        }
        let columns = self.field_list()?;
        let tags = if self.eat_kw("tags")? {
            self.field_list()?
        } else {
            Vec::new()
        };
        self.table_options()?;
        if stable || !tags.is_empty() {
            if tags.is_empty() {
                return Err(self.error("a super table needs TAGS"));
            }
            Ok(Statement::CreateStable {
                if_not_exists,
                name,
                columns,
                tags,
            })
        } else {
            Ok(Statement::CreateTable {
                if_not_exists,
                name,
                columns,
            })
        }
    }

    /// Skips table options the stand-in ignores (`COMMENT '…'`, `TTL n`, …).
    fn table_options(&mut self) -> TdResult<()> {
        while self.is_kw("comment")
            || self.is_kw("ttl")
            || self.is_kw("watermark")
            || self.is_kw("max_delay")
            || self.is_kw("sma")
        {
            self.advance()?;
            self.option_value()?;
        }
        Ok(())
    }

    fn option_value(&mut self) -> TdResult<()> {
        self.eat_sym("=")?;
        if self.eat_sym("(")? {
            while !self.eat_sym(")")? {
                if self.cur.tok == Tok::End {
                    return Err(self.error("expected ')'"));
                }
                self.advance()?;
            }
            return Ok(());
        }
        self.eat_sym("-")?;
        match self.cur.tok {
            Tok::Num | Tok::Str | Tok::Word | Tok::Dur => {
                self.advance()?;
                // `KEEP 3650d,3650d` and similar lists.
                while self.eat_sym(",")? {
                    self.advance()?;
                }
                Ok(())
            }
            _ => Err(self.error("expected an option value")),
        }
    }

    fn field_list(&mut self) -> TdResult<Vec<Field>> {
        self.expect_sym("(")?;
        let mut out = Vec::new();
        loop {
            let name = self.ident()?;
            out.push(self.column_type(name)?);
            // Column options: PRIMARY KEY, ENCODE '…', COMPRESS '…', LEVEL '…', COMMENT '…'.
            loop {
                if self.eat_kw("primary")? {
                    self.expect_kw("key")?;
                } else if self.eat_kw("encode")?
                    || self.eat_kw("compress")?
                    || self.eat_kw("level")?
                    || self.eat_kw("comment")?
                {
                    self.option_value()?;
                } else {
                    break;
                }
            }
            if !self.eat_sym(",")? {
                break;
            }
        }
        self.expect_sym(")")?;
        Ok(out)
    }

    fn column_type(&mut self, name: String) -> TdResult<Field> {
        if self.cur.tok != Tok::Word {
            return Err(self.error("expected a type"));
        }
        let pos = self.cur.start;
        let mut ty_name = self.text().to_ascii_uppercase();
        self.advance()?;
        if matches!(
            ty_name.as_str(),
            "TINYINT" | "SMALLINT" | "INT" | "INTEGER" | "BIGINT"
        ) && self.eat_kw("unsigned")?
        {
            ty_name = format!("{} UNSIGNED", if ty_name == "INTEGER" { "INT" } else { &ty_name });
        }
        let ty = ColumnType::from_sql_name(&ty_name)
            .ok_or_else(|| TdError::syntax(self.sql, pos, "unknown or unsupported type"))?;
        if ty.is_var() && ty != ColumnType::Json {
            let length = if self.eat_sym("(")? {
                let n = self.uint()?;
                self.expect_sym(")")?;
                n
            } else if ty == ColumnType::Geometry {
                return Err(self.error("GEOMETRY needs a length"));
            } else {
                // TDengine's default for a bare BINARY/NCHAR/VARCHAR.
                1
            };
            let max = if ty == ColumnType::NChar { 16_382 } else { 65_517 };
            if n_invalid(length, max) {
                return Err(TdError::new(
                    code::INVALID_VAR_COLUMN_LEN,
                    format!("Invalid binary/nchar column/tag length: {name}"),
                ));
            }
            Ok(Field::new(name, ty, length as u32))
        } else if ty == ColumnType::Json {
            Ok(Field::new(name, ty, 4095))
        } else {
            Ok(Field::fixed(name, ty))
        }
    }

    fn using(&mut self) -> TdResult<Using> {
        self.expect_kw("using")?;
        let stable = self.qual_name()?;
        let tag_names = if self.is_sym("(") {
            Some(self.name_list()?)
        } else {
            None
        };
        self.expect_kw("tags")?;
        let tags = self.literal_list()?;
        self.table_options()?;
        Ok(Using {
            stable,
            tag_names,
            tags,
        })
    }

    fn name_list(&mut self) -> TdResult<Vec<String>> {
        self.expect_sym("(")?;
        let mut out = vec![self.ident()?];
        while self.eat_sym(",")? {
            out.push(self.ident()?);
        }
        self.expect_sym(")")?;
        Ok(out)
    }

    fn insert(&mut self) -> TdResult<Statement> {
        self.expect_kw("into")?;
        let mut tables = Vec::new();
        loop {
            let pos = self.cur.start;
            let name = self.qual_name()?;
            let using = if self.is_kw("using") {
                Some(self.using()?)
            } else {
                None
            };
            let columns = if self.is_sym("(") {
                Some(self.name_list()?)
            } else {
                None
            };
            self.expect_kw("values")?;
            let mut rows = Vec::new();
            while self.is_sym("(") {
                rows.push(self.literal_list()?);
            }
            if rows.is_empty() {
                return Err(self.error("expected '(' with values"));
            }
            tables.push(InsertTable {
                name,
                pos,
                using,
                columns,
                rows,
            });
            if !(self.cur.tok == Tok::Word || self.cur.tok == Tok::Quoted) {
                break;
            }
            // `INSERT INTO t1 VALUES(…) INTO t2 …` is accepted too.
            self.eat_kw("into")?;
        }
        Ok(Statement::Insert(tables))
    }

    fn alter(&mut self) -> TdResult<Statement> {
        if self.eat_kw("database")? {
            let name = self.ident()?;
            let mut wal_retention_period = None;
            if self.cur.tok != Tok::Word {
                return Err(self.error("expected a database option"));
            }
            while self.cur.tok == Tok::Word {
                let opt_pos = self.cur.start;
                if self.eat_kw("wal_retention_period")? {
                    self.eat_sym("=")?;
                    wal_retention_period = Some(self.uint()? as i64);
                } else if [
                    "keep",
                    "cachemodel",
                    "cachesize",
                    "wal_fsync_period",
                    "wal_level",
                    "buffer",
                    "pages",
                    "replica",
                    "wal_retention_size",
                    "stt_trigger",
                    "minrows",
                    "keep_time_offset",
                ]
                .iter()
                .any(|o| self.is_kw(o))
                {
                    self.advance()?;
                    self.option_value()?;
                } else {
                    return Err(TdError::syntax(self.sql, opt_pos, "unknown database option"));
                }
            }
            return Ok(Statement::AlterDatabase {
                name,
                wal_retention_period,
            });
        }
        let stable = if self.eat_kw("stable")? {
            true
        } else {
            self.expect_kw("table")?;
            false
        };
        let name = self.qual_name()?;
        let action = if self.eat_kw("add")? {
            if self.eat_kw("tag")? {
                let n = self.ident()?;
                AlterAction::AddTag(self.column_type(n)?)
            } else {
                self.eat_kw("column")?;
                let n = self.ident()?;
                AlterAction::AddColumn(self.column_type(n)?)
            }
        } else if self.eat_kw("drop")? {
            if self.eat_kw("tag")? {
                AlterAction::DropTag(self.ident()?)
            } else {
                self.eat_kw("column")?;
                AlterAction::DropColumn(self.ident()?)
            }
        } else if self.eat_kw("set")? {
            self.expect_kw("tag")?;
            let name = self.ident()?;
            self.expect_sym("=")?;
            AlterAction::SetTag {
                name,
                value: self.literal()?,
            }
        } else {
            return Err(self.error("expected ADD, DROP or SET"));
        };
        Ok(Statement::Alter { stable, name, action })
    }

    fn drop(&mut self) -> TdResult<Statement> {
        if self.eat_kw("database")? {
            let if_exists = self.if_exists()?;
            return Ok(Statement::DropDatabase {
                if_exists,
                name: self.ident()?,
            });
        }
        if self.eat_kw("topic")? {
            let if_exists = self.if_exists()?;
            return Ok(Statement::DropTopic {
                if_exists,
                name: self.ident()?,
            });
        }
        let stable = if self.eat_kw("stable")? {
            true
        } else {
            self.expect_kw("table")?;
            false
        };
        let if_exists = self.if_exists()?;
        let mut names = vec![self.qual_name()?];
        while self.eat_sym(",")? {
            names.push(self.qual_name()?);
        }
        Ok(Statement::Drop {
            stable,
            if_exists,
            names,
        })
    }

    fn show(&mut self) -> TdResult<Statement> {
        let what = if self.eat_kw("databases")? {
            ShowWhat::Databases
        } else if self.eat_kw("topics")? {
            ShowWhat::Topics
        } else if self.eat_kw("consumers")? {
            ShowWhat::Consumers
        } else if self.eat_kw("subscriptions")? {
            ShowWhat::Subscriptions
        } else if self.eat_kw("stables")? {
            ShowWhat::Stables(self.show_db()?)
        } else if self.eat_kw("tables")? {
            ShowWhat::Tables(self.show_db()?)
        } else if self.eat_kw("vgroups")? {
            ShowWhat::Vgroups(self.show_db()?)
        } else {
            // `SHOW db.STABLES`
            let db = self.ident()?;
            self.expect_sym(".")?;
            if self.eat_kw("stables")? {
                ShowWhat::Stables(Some(db))
            } else if self.eat_kw("tables")? {
                ShowWhat::Tables(Some(db))
            } else if self.eat_kw("vgroups")? {
                ShowWhat::Vgroups(Some(db))
            } else {
                return Err(self.error("expected STABLES, TABLES or VGROUPS"));
            }
        };
        Ok(Statement::Show(what))
    }

    fn show_db(&mut self) -> TdResult<Option<String>> {
        if self.eat_kw("from")? || self.eat_kw("in")? {
            Ok(Some(self.ident()?))
        } else {
            Ok(None)
        }
    }

    fn create_topic(&mut self, start: usize) -> TdResult<Statement> {
        let if_not_exists = self.if_not_exists()?;
        let name = self.ident()?;
        let with_meta = if self.eat_kw("with")? {
            self.expect_kw("meta")?;
            true
        } else {
            false
        };
        self.expect_kw("as")?;
        let source = if self.is_kw("select") {
            if with_meta {
                return Err(self.error("WITH META is not allowed for a query topic"));
            }
            let sel = self.select()?;
            let Some(from) = sel.from else {
                return Err(TdError::new(code::INVALID_TOPIC_QUERY, "Invalid topic query"));
            };
            if !sel.order_by.is_empty() || sel.limit.is_some() {
                return Err(TdError::new(code::INVALID_TOPIC_QUERY, "Invalid topic query"));
            }
            TopicSource::Query {
                items: sel.items,
                from,
                filter: sel.filter,
            }
        } else if self.eat_kw("stable")? {
            let name = self.qual_name()?;
            let filter = if self.eat_kw("where")? {
                Some(self.expr()?)
            } else {
                None
            };
            TopicSource::Stable { name, filter }
        } else if self.eat_kw("database")? {
            TopicSource::Database(self.ident()?)
        } else {
            return Err(self.error("expected SELECT, STABLE or DATABASE"));
        };
        let sql = self.sql[start..self.cur.start].trim().to_string();
        Ok(Statement::CreateTopic {
            if_not_exists,
            name,
            with_meta,
            source,
            sql,
        })
    }
}

fn n_invalid(n: u64, max: u64) -> bool {
    n == 0 || n > max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_sql() {
        let s = parse(
            "create database db vgroups 1; create table db.meters (ts timestamp, f1 int) tags(t1 int); \
             create topic topic_meters as select ts, tbname, f1, t1 from db.meters; \
             insert into db.tb using db.meters tags(1) values(now, 1);",
        )
        .unwrap();
        assert_eq!(s.len(), 4);
        assert!(matches!(&s[1], Statement::CreateStable { tags, .. } if tags.len() == 1));
        match &s[2] {
            Statement::CreateTopic {
                sql,
                source: TopicSource::Query { items, .. },
                ..
            } => {
                assert_eq!(items.len(), 4);
                assert_eq!(
                    sql,
                    "create topic topic_meters as select ts, tbname, f1, t1 from db.meters"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&s[3], Statement::Insert(t) if t[0].using.is_some() && t[0].rows.len() == 1));
    }

    #[test]
    fn syntax_error_names_position() {
        let e = parse("select * form t").unwrap_err();
        assert_eq!(e.code, 0x2600);
        assert!(e.message.contains("position 9"), "{}", e.message);
        assert!(e.message.contains("form t"), "{}", e.message);
    }

    #[test]
    fn where_and_now() {
        let s = parse("select count(*) from `d`.`m` where ts >= now - 1h and groupid in (1, 2) order by ts desc limit 5").unwrap();
        let Statement::Select(sel) = &s[0] else { panic!() };
        assert_eq!(sel.items, vec![SelectItem::Count(None)]);
        assert_eq!(sel.order_by, vec![("ts".into(), true)]);
        assert_eq!(sel.limit, Some(5));
        assert!(matches!(sel.filter, Some(Expr::And(..))));
        let s = parse("select * from m order by tbname, ts desc limit 2").unwrap();
        let Statement::Select(sel) = &s[0] else { panic!() };
        assert_eq!(sel.order_by, vec![("tbname".into(), false), ("ts".into(), true)]);
        assert!(parse("select * from m order by tbname,").is_err());
    }

    #[test]
    fn huge_duration_is_an_error_not_an_overflow() {
        // Found by the `sql_parser` fuzz target: `n * unit` overflowed i128.
        let sql = "insert into d.t values (now+333333333333333333333333333333331s, 1)";
        let e = parse(sql).unwrap_err();
        assert!(e.message.contains("duration out of range"), "{e:?}");
        let sql = "insert into d.t values (now+9223372036s, 1)";
        assert!(parse(sql).is_ok());
    }
}
