//! The statements of the SQL subset, as the parser produces them and the executor runs them.

use crate::tdengine::types::{Field, Precision};

/// A possibly database-qualified name (`db.t` or `t`).
#[derive(Debug, Clone, PartialEq)]
pub struct QualName {
    pub db: Option<String>,
    pub name: String,
}

/// A constant as written in SQL, with its byte position for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Lit {
    pub value: Literal,
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    /// An integer literal (wide enough for both `-2^63` and `2^64 - 1`).
    Int(i128),
    Float(f64),
    Str(String),
    /// `NOW`, `NOW()`, `NOW ± durations`: an offset in nanoseconds from the current time.
    Now {
        offset_ns: i128,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A `WHERE` condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A column, tag or `tbname`.
    Column(String),
    Lit(Lit),
    Cmp(Box<Expr>, CmpOp, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
    },
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`: every column (of a super table: columns then tags, as TDengine does).
    Star,
    /// `COUNT(*)` / `COUNT(col)`.
    Count(Option<String>),
    /// A column, a tag, or `tbname`, with an optional alias.
    Column { name: String, alias: Option<String> },
    /// A function without arguments (`SERVER_VERSION()`, `DATABASE()`, `NOW()`, …), lowercased.
    Func(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub items: Vec<SelectItem>,
    /// `None` for `SELECT SERVER_VERSION()` and friends.
    pub from: Option<QualName>,
    pub filter: Option<Expr>,
    /// `ORDER BY <col> [ASC|DESC], …`: (column, descending) per key, most significant first; empty when
    /// there is no `ORDER BY`.
    pub order_by: Vec<(String, bool)>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateDatabase {
    pub if_not_exists: bool,
    pub name: String,
    pub vgroups: Option<u32>,
    pub precision: Option<Precision>,
    pub wal_retention_period: Option<i64>,
}

/// `t USING st [(tag names)] TAGS (…)` of `CREATE TABLE` and `INSERT`.
#[derive(Debug, Clone, PartialEq)]
pub struct Using {
    pub stable: QualName,
    pub tag_names: Option<Vec<String>>,
    pub tags: Vec<Lit>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateChild {
    pub if_not_exists: bool,
    pub name: QualName,
    pub using: Using,
}

/// The rows for one table of a (possibly multi-table) `INSERT`.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertTable {
    pub name: QualName,
    /// Position of the table name, for errors.
    pub pos: usize,
    pub using: Option<Using>,
    pub columns: Option<Vec<String>>,
    pub rows: Vec<Vec<Lit>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlterAction {
    AddColumn(Field),
    DropColumn(String),
    AddTag(Field),
    DropTag(String),
    SetTag { name: String, value: Lit },
}

/// What a topic reads.
#[derive(Debug, Clone, PartialEq)]
pub enum TopicSource {
    /// `AS SELECT items FROM table [WHERE filter]`.
    Query {
        items: Vec<SelectItem>,
        from: QualName,
        filter: Option<Expr>,
    },
    /// `AS STABLE db.st [WHERE filter]`.
    Stable { name: QualName, filter: Option<Expr> },
    /// `AS DATABASE db`.
    Database(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ShowWhat {
    Databases,
    Stables(Option<String>),
    Tables(Option<String>),
    Vgroups(Option<String>),
    Topics,
    Consumers,
    Subscriptions,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    CreateDatabase(CreateDatabase),
    DropDatabase {
        if_exists: bool,
        name: String,
    },
    Use(String),
    /// `CREATE STABLE` or `CREATE TABLE … TAGS (…)`.
    CreateStable {
        if_not_exists: bool,
        name: QualName,
        columns: Vec<Field>,
        tags: Vec<Field>,
    },
    CreateTable {
        if_not_exists: bool,
        name: QualName,
        columns: Vec<Field>,
    },
    CreateChildren(Vec<CreateChild>),
    Insert(Vec<InsertTable>),
    /// `ALTER DATABASE db WAL_RETENTION_PERIOD s` (other options are accepted and ignored).
    AlterDatabase {
        name: String,
        wal_retention_period: Option<i64>,
    },
    Alter {
        stable: bool,
        name: QualName,
        action: AlterAction,
    },
    Drop {
        stable: bool,
        if_exists: bool,
        names: Vec<QualName>,
    },
    Delete {
        table: QualName,
        filter: Option<Expr>,
    },
    Select(Select),
    Show(ShowWhat),
    Describe(QualName),
    CreateTopic {
        if_not_exists: bool,
        name: String,
        with_meta: bool,
        source: TopicSource,
        sql: String,
    },
    DropTopic {
        if_exists: bool,
        name: String,
    },
}
