//! Message assembly, sans-IO: from a topic's definition and a vgroup's log entries starting at a position,
//! build the next TMQ message — data blocks (one per table, projected for query topics) or one meta event
//! (only for `WITH META` topics) — and the position after it.
//!
//! A message's offset is the version of the last log entry it covers (entries that do not concern the topic
//! are covered too, so the position after a message is always its offset + 1).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::tdengine::block::BlockBuilder;
use crate::tdengine::types::{ColumnType, Field, Value};
use crate::tdengine::wal::{MetaEvent, TableRows, WalEntry, WalOp};

use super::group::VgroupId;

/// Rows per message unless configured otherwise (TDengine's `tmq.rows_per_block`-like cap).
pub const DEFAULT_MAX_ROWS: usize = 4096;
/// How many log entries one scan may skip before it returns with no message (bounds the work per poll).
pub const MAX_SCAN_ENTRIES: usize = 65_536;

/// `tbname` as a query column: VARCHAR(192) in TDengine.
pub const TBNAME_LENGTH: u32 = 192;

/// A predicate on a table (its name and tags at write time), built by the SQL layer from the topic's
/// `WHERE` clause.
pub type TableFilter = Arc<dyn Fn(&TableRows) -> bool + Send + Sync>;

/// A topic as TMQ needs to know it.
#[derive(Clone)]
pub struct TopicSpec {
    pub name: String,
    pub db: String,
    pub kind: TopicKind,
    /// `WITH META`: meta events (create/alter/drop/delete) are delivered too.
    pub with_meta: bool,
    /// Tag filter of the `WHERE` clause; `None` keeps every table.
    pub filter: Option<TableFilter>,
}

impl fmt::Debug for TopicSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicSpec")
            .field("name", &self.name)
            .field("db", &self.db)
            .field("kind", &self.kind)
            .field("with_meta", &self.with_meta)
            .field("filter", &self.filter.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub enum TopicKind {
    /// `AS SELECT cols FROM db.from`: `from` is a super table or a (normal or child) table.
    Query { from: String, columns: Vec<Projection> },
    /// `AS STABLE db.stable`: every column of the super table's children.
    Stable { stable: String },
    /// `AS DATABASE db`: every table of the database.
    Database,
}

/// One output column of a query topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// The output field (its name is the select item's name).
    pub field: Field,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Column(String),
    Tag(String),
    Tbname,
}

impl Projection {
    pub fn tbname() -> Self {
        Self {
            field: Field {
                name: "tbname".into(),
                ty: ColumnType::VarChar,
                length: TBNAME_LENGTH,
            },
            source: Source::Tbname,
        }
    }
}

/// One table's rows within a message. The rows stay in the log entries (or snapshot tables) they came
/// from and are projected when the block is encoded: a message is built per poll and encoded once, so
/// copying every value into it first (a `Vec` and the tag and name strings per row) was most of the
/// stand-in's cost per row (`harness bench`, perf).
#[derive(Debug, Clone)]
pub struct Block {
    pub table: String,
    pub fields: Arc<Vec<Field>>,
    parts: Vec<Part>,
    len: usize,
}

/// Rows `range` of one write, and where each of the block's fields comes from in them.
#[derive(Debug, Clone)]
struct Part {
    source: RowSource,
    range: std::ops::Range<usize>,
    getters: Arc<[Getter]>,
    /// `tbname` as a value, for [`Getter::Tbname`].
    tbname: Value,
}

/// Where a part's rows live: a log entry (shared) or a snapshot's copy of a table.
#[derive(Debug, Clone)]
pub(super) enum RowSource {
    Wal { entry: Arc<WalEntry>, table: usize },
    Snapshot(Arc<TableRows>),
}

impl RowSource {
    fn table_rows(&self) -> &TableRows {
        match self {
            RowSource::Wal { entry, table } => match &entry.op {
                WalOp::Insert(insert) => &insert.tables[*table],
                WalOp::Meta(_) | WalOp::Internal(_) => unreachable!("parts are made from inserts only"),
            },
            RowSource::Snapshot(tr) => tr,
        }
    }
}

static NULL: Value = Value::Null;

impl Block {
    /// Rows in the block.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Each row's values in `fields` order.
    pub fn rows(&self) -> impl Iterator<Item = Vec<Value>> + '_ {
        self.parts.iter().flat_map(|part| {
            let tr = part.source.table_rows();
            part.range
                .clone()
                .map(move |r| part.row(tr, r).cloned().collect())
        })
    }

    /// Each row's primary timestamp as stored (the first column of its table).
    pub fn timestamps(&self) -> impl Iterator<Item = i64> + '_ {
        self.parts.iter().flat_map(|part| {
            let tr = part.source.table_rows();
            part.range.clone().map(move |r| match tr.rows[r].first() {
                Some(Value::Timestamp(ts)) => *ts,
                _ => i64::MIN,
            })
        })
    }

    /// The block as a raw block (§4 of the protocol reference).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = BlockBuilder::with_capacity(&self.fields, self.len);
        for part in &self.parts {
            let tr = part.source.table_rows();
            for r in part.range.clone() {
                b.push_row(part.row(tr, r));
            }
        }
        b.finish()
    }
}

impl PartialEq for Block {
    fn eq(&self, other: &Self) -> bool {
        self.table == other.table && self.fields == other.fields && self.rows().eq(other.rows())
    }
}

impl Part {
    fn row<'a>(&'a self, tr: &'a TableRows, r: usize) -> impl Iterator<Item = &'a Value> + 'a {
        let row = &tr.rows[r];
        self.getters.iter().map(move |g| g.get(row, tr, &self.tbname))
    }
}

#[derive(Debug, Clone)]
pub enum Body {
    /// `message_type` 1.
    Data(Vec<Block>),
    /// `message_type` 2: one create/alter/drop/delete event.
    Meta(Arc<MetaEvent>),
    /// `message_type` 3: data whose writes auto-created child tables, with those tables' create events
    /// (only for `WITH META` topics).
    MetaData {
        created: Vec<Arc<MetaEvent>>,
        blocks: Vec<Block>,
    },
}

impl Body {
    /// TMQ's `message_type` of this body.
    pub fn message_type(&self) -> u8 {
        match self {
            Body::Data(_) => 1,
            Body::Meta(_) => 2,
            Body::MetaData { .. } => 3,
        }
    }

    /// The data blocks (none for a meta message).
    pub fn blocks(&self) -> &[Block] {
        match self {
            Body::Data(blocks) | Body::MetaData { blocks, .. } => blocks,
            Body::Meta(_) => &[],
        }
    }

    /// The meta JSON `fetch_json_meta` returns: the event itself for a meta message, TDengine's plural
    /// form (`{"tmq_meta_version":"1.0","metas":[…]}`) for meta+data, `None` for data.
    pub fn json_meta(&self) -> Option<serde_json::Value> {
        match self {
            Body::Data(_) => None,
            Body::Meta(ev) => Some(ev.json.clone()),
            Body::MetaData { created, .. } => Some(serde_json::json!({
                "tmq_meta_version": "1.0",
                "metas": created.iter().map(|ev| ev.json.clone()).collect::<Vec<_>>(),
            })),
        }
    }
}

/// A message ready to hand out.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub db: String,
    pub vgroup: VgroupId,
    /// Version of the last log entry covered.
    pub offset: i64,
    pub body: Body,
}

impl Message {
    /// Where the consumer continues after this message.
    pub fn next(&self) -> i64 {
        self.offset + 1
    }

    pub fn rows(&self) -> usize {
        self.body.blocks().iter().map(Block::len).sum()
    }
}

/// The result of one scan: maybe a message, and the position after everything looked at.
#[derive(Debug, Clone)]
pub struct Scan {
    pub message: Option<Message>,
    pub next: i64,
}

impl TopicSpec {
    pub(super) fn wants_table(&self, rows: &TableRows) -> bool {
        if rows.db != self.db {
            return false;
        }
        let kind_ok = match &self.kind {
            TopicKind::Query { from, .. } => {
                rows.stable.as_deref() == Some(from.as_str()) || rows.table == *from
            }
            TopicKind::Stable { stable } => rows.stable.as_deref() == Some(stable.as_str()),
            TopicKind::Database => true,
        };
        kind_ok && self.filter.as_ref().is_none_or(|f| f(rows))
    }

    pub(super) fn wants_meta(&self, ev: &MetaEvent) -> bool {
        if !self.with_meta || ev.db != self.db {
            return false;
        }
        match &self.kind {
            TopicKind::Query { .. } => false,
            TopicKind::Stable { stable } => ev.stable.as_deref() == Some(stable.as_str()),
            TopicKind::Database => true,
        }
    }
}

/// How a [`BlockSet`] groups rows into blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Merge {
    /// Every write to a table is its own block (TDengine up to 3.3.6 in the WAL: one block per table per
    /// log entry).
    #[default]
    None,
    /// Writes to one table with one schema share a block (snapshot reads).
    SameTable,
    /// Every row goes into one block (newest TDengine, query topics); the block has no table name.
    All,
}

/// Accumulates blocks.
#[derive(Default)]
pub(super) struct BlockSet {
    pub(super) blocks: Vec<Block>,
    by_table: HashMap<String, usize>,
    pub(super) rows: usize,
    merge: Merge,
}

impl BlockSet {
    pub(super) fn new(merge: Merge) -> Self {
        Self {
            merge,
            ..Self::default()
        }
    }

    fn block_for(&mut self, table: &str, fields: &Arc<Vec<Field>>) -> &mut Block {
        let same = |b: &Block| Arc::ptr_eq(&b.fields, fields) || b.fields == *fields;
        let reuse = match self.merge {
            Merge::None => None,
            Merge::SameTable => self
                .by_table
                .get(table)
                .copied()
                .filter(|&i| same(&self.blocks[i])),
            Merge::All => self
                .blocks
                .len()
                .checked_sub(1)
                .filter(|&i| same(&self.blocks[i])),
        };
        let name = if self.merge == Merge::All { "" } else { table };
        let i = match reuse {
            Some(i) => i,
            None => {
                self.blocks.push(Block {
                    table: name.to_string(),
                    fields: fields.clone(),
                    parts: Vec::new(),
                    len: 0,
                });
                let i = self.blocks.len() - 1;
                if self.merge == Merge::SameTable {
                    self.by_table.insert(table.to_string(), i);
                }
                i
            }
        };
        &mut self.blocks[i]
    }

    /// Adds rows `range` of `source`'s table.
    pub(super) fn add(
        &mut self,
        topic: &TopicSpec,
        projected: Option<&Arc<Vec<Field>>>,
        source: RowSource,
        range: std::ops::Range<usize>,
    ) {
        let tr = source.table_rows();
        if range.is_empty() {
            return;
        }
        self.rows += range.len();
        let (fields, getters): (_, Arc<[Getter]>) = match (&topic.kind, projected) {
            (TopicKind::Query { columns, .. }, Some(fields)) => (
                fields.clone(),
                columns.iter().map(|p| Getter::new(p, tr)).collect(),
            ),
            // Stable and database topics: the columns as written.
            _ => (
                tr.columns.clone(),
                (0..tr.columns.len()).map(Getter::Column).collect(),
            ),
        };
        let tbname = Value::VarChar(tr.table.clone());
        let table = tr.table.clone();
        let block = self.block_for(&table, &fields);
        block.len += range.len();
        block.parts.push(Part {
            source,
            range,
            getters,
            tbname,
        });
    }
}

/// Where a projected value comes from in one write.
#[derive(Debug, Clone, Copy)]
enum Getter {
    Column(usize),
    Tag(usize),
    Tbname,
    Missing,
}

impl Getter {
    fn new(p: &Projection, tr: &TableRows) -> Self {
        match &p.source {
            // A name not found where expected is looked up on the other side too: the SQL layer may
            // only know select items by name.
            Source::Column(name) | Source::Tag(name) => {
                let col = || {
                    tr.columns
                        .iter()
                        .position(|f| f.name.eq_ignore_ascii_case(name))
                        .map(Self::Column)
                };
                let tag = || {
                    tr.tags
                        .iter()
                        .position(|(f, _)| f.name.eq_ignore_ascii_case(name))
                        .map(Self::Tag)
                };
                let found = if matches!(p.source, Source::Column(_)) {
                    col().or_else(tag)
                } else {
                    tag().or_else(col)
                };
                found.unwrap_or(Self::Missing)
            }
            Source::Tbname => Self::Tbname,
        }
    }

    fn get<'a>(&self, row: &'a [Value], tr: &'a TableRows, tbname: &'a Value) -> &'a Value {
        match self {
            Self::Column(i) => row.get(*i).unwrap_or(&NULL),
            Self::Tag(i) => &tr.tags[*i].1,
            Self::Tbname => tbname,
            Self::Missing => &NULL,
        }
    }
}

/// A snapshot read of a vgroup's table store (`experimental.snapshot.enable`): the rows the log no longer
/// holds, handed out table by table, `max_rows` at a time, before the consumer continues with the log.
#[derive(Debug, Clone)]
pub struct Snapshot {
    tables: Vec<Arc<TableRows>>,
    table: usize,
    row: usize,
    /// The log position the consumer continues at once the snapshot is drained.
    pub resume_at: i64,
}

impl Snapshot {
    /// `tables` is the store's content for the vgroup (current schema and tags, all rows) as of log version
    /// `resume_at - 1`.
    pub fn new(tables: Vec<TableRows>, resume_at: i64) -> Self {
        Self {
            tables: tables.into_iter().map(Arc::new).collect(),
            table: 0,
            row: 0,
            resume_at,
        }
    }

    /// Whether no row of `topic` is left to hand out. Checked after each message, so that the consumer's
    /// position moves past the snapshot with its last message rather than with the poll after it (a
    /// position committed after the last chunk must not replay the snapshot).
    pub fn is_drained(&self, topic: &TopicSpec) -> bool {
        self.tables.iter().enumerate().skip(self.table).all(|(i, tr)| {
            let from = if i == self.table { self.row } else { 0 };
            from >= tr.rows.len() || !topic.wants_table(tr)
        })
    }

    /// The next snapshot message, or `None` when drained. Snapshot messages carry offset `resume_at - 1`.
    pub fn next_message(&mut self, topic: &TopicSpec, vgroup: VgroupId, max_rows: usize) -> Option<Message> {
        let projected: Option<Arc<Vec<Field>>> = match &topic.kind {
            TopicKind::Query { columns, .. } => {
                Some(Arc::new(columns.iter().map(|p| p.field.clone()).collect()))
            }
            _ => None,
        };
        let mut set = BlockSet::new(Merge::SameTable);
        while self.table < self.tables.len() && set.rows < max_rows.max(1) {
            let tr = &self.tables[self.table];
            if !topic.wants_table(tr) || self.row >= tr.rows.len() {
                self.table += 1;
                self.row = 0;
                continue;
            }
            let take = (max_rows.max(1) - set.rows).min(tr.rows.len() - self.row);
            let source = RowSource::Snapshot(tr.clone());
            set.add(topic, projected.as_ref(), source, self.row..self.row + take);
            self.row += take;
        }
        set.blocks.retain(|b| !b.is_empty());
        (!set.blocks.is_empty()).then(|| Message {
            topic: topic.name.clone(),
            db: topic.db.clone(),
            vgroup,
            offset: self.resume_at - 1,
            body: Body::Data(set.blocks),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::cut::{next_message, CutModel, Limits, Resume};
    use super::*;
    use crate::tdengine::wal::{Insert, MetaKind, Wal};

    fn f(name: &str, ty: ColumnType, length: u32) -> Field {
        Field {
            name: name.into(),
            ty,
            length,
        }
    }

    fn meters_cols() -> Arc<Vec<Field>> {
        Arc::new(vec![
            f("ts", ColumnType::Timestamp, 8),
            f("f1", ColumnType::Int, 4),
        ])
    }

    fn rows(table: &str, t1: i32, values: &[(i64, i32)]) -> TableRows {
        TableRows {
            db: "db".into(),
            table: table.into(),
            stable: Some("meters".into()),
            columns: meters_cols(),
            tags: Arc::new(vec![(f("t1", ColumnType::Int, 4), Value::Int(t1))]),
            rows: values
                .iter()
                .map(|(ts, v)| vec![Value::Timestamp(*ts), Value::Int(*v)])
                .collect(),
        }
    }

    fn meta(kind: MetaKind, table: &str) -> MetaEvent {
        MetaEvent {
            db: "db".into(),
            stable: Some("meters".into()),
            table: Some(table.into()),
            kind,
            json: serde_json::json!({"type": "drop", "tableNameList": [table]}),
        }
    }

    fn seed_topic() -> TopicSpec {
        TopicSpec {
            name: "topic_meters".into(),
            db: "db".into(),
            kind: TopicKind::Query {
                from: "meters".into(),
                columns: vec![
                    Projection {
                        field: f("ts", ColumnType::Timestamp, 8),
                        source: Source::Column("ts".into()),
                    },
                    Projection::tbname(),
                    Projection {
                        field: f("f1", ColumnType::Int, 4),
                        source: Source::Column("f1".into()),
                    },
                    Projection {
                        field: f("t1", ColumnType::Int, 4),
                        source: Source::Tag("t1".into()),
                    },
                ],
            },
            with_meta: false,
            filter: None,
        }
    }

    fn db_topic(with_meta: bool) -> TopicSpec {
        TopicSpec {
            name: "all".into(),
            db: "db".into(),
            kind: TopicKind::Database,
            with_meta,
            filter: None,
        }
    }

    fn limits(cut: CutModel, min_rows: usize) -> Limits<'static> {
        Limits {
            cut,
            min_rows,
            expired: &|| false,
        }
    }

    fn scan(topic: &TopicSpec, wal: &Wal, from: i64, max: usize) -> Scan {
        scan_with(topic, wal, from, None, &limits(CutModel::PerTableEntry, max)).0
    }

    fn scan_with(
        topic: &TopicSpec,
        wal: &Wal,
        from: i64,
        resume: Option<Resume>,
        limits: &Limits<'_>,
    ) -> (Scan, Option<Resume>) {
        let read_from = resume.map_or(from, |r| r.version);
        next_message(topic, 2, from, resume, wal.read_from(read_from), limits)
    }

    /// (table, rows) of each block.
    fn shape(m: &Message) -> Vec<(String, usize)> {
        m.body
            .blocks()
            .iter()
            .map(|b| (b.table.clone(), b.len()))
            .collect()
    }

    fn shaped(v: &[(&str, usize)]) -> Vec<(String, usize)> {
        v.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    /// The seed's topic over: v1 `a` ×2 rows; v2 `b`, `a` (one multi-table INSERT); v3 `a`; v4 a commit.
    fn fleet_wal() -> Wal {
        let mut wal = Wal::new();
        wal.append(0, WalOp::Insert(vec![rows("a", 1, &[(1, 1), (2, 2)])].into()));
        wal.append(
            0,
            WalOp::Insert(vec![rows("b", 2, &[(1, 3)]), rows("a", 1, &[(3, 4)])].into()),
        );
        wal.append(0, WalOp::Insert(vec![rows("a", 1, &[(4, 5)])].into()));
        wal.append(
            0,
            WalOp::Internal(crate::tdengine::wal::InternalOp::TmqCommitOffset),
        );
        wal
    }

    #[test]
    fn up_to_3_3_every_table_of_every_entry_is_a_block_and_a_query_topic_closes_after_any_block() {
        let wal = fleet_wal();
        let topic = seed_topic();
        // Below the row limit the scan reads to the end of the log: one response, one block per table per
        // entry, consecutive writes to `a` not merged; the position is after the commit entry.
        let (s, r) = scan_with(&topic, &wal, 1, None, &limits(CutModel::PerTableEntry, 4096));
        let m = s.message.unwrap();
        assert_eq!(shape(&m), shaped(&[("a", 2), ("b", 1), ("a", 1), ("a", 1)]));
        assert_eq!((m.offset, s.next, r), (4, 5, None));
        // min rows 3: closes after `b` inside v2; the position is v2 + 1 and the rest of v2 comes next.
        let (s, r) = scan_with(&topic, &wal, 1, None, &limits(CutModel::PerTableEntry, 3));
        let m = s.message.unwrap();
        assert_eq!(shape(&m), shaped(&[("a", 2), ("b", 1)]));
        assert_eq!((s.next, r), (3, Some(Resume { version: 2, table: 1 })));
        let (s, r) = scan_with(&topic, &wal, 3, r, &limits(CutModel::PerTableEntry, 3));
        let m = s.message.unwrap();
        assert_eq!(shape(&m), shaped(&[("a", 1), ("a", 1)]));
        assert_eq!((s.next, r), (5, None));
        // min rows 1: a block per response.
        let (s, _) = scan_with(&topic, &wal, 1, None, &limits(CutModel::PerTableEntry, 1));
        assert_eq!(shape(&s.message.unwrap()), shaped(&[("a", 2)]));
        assert_eq!(s.next, 2);
    }

    #[test]
    fn a_stable_or_database_topic_closes_after_whole_entries_only() {
        let wal = fleet_wal();
        let (s, r) = scan_with(
            &db_topic(false),
            &wal,
            1,
            None,
            &limits(CutModel::PerTableEntry, 3),
        );
        let m = s.message.unwrap();
        assert_eq!(shape(&m), shaped(&[("a", 2), ("b", 1), ("a", 1)]));
        assert_eq!((s.next, r), (3, None));
    }

    #[test]
    fn newest_tdengine_merges_a_query_topics_rows_into_one_nameless_block() {
        let wal = fleet_wal();
        let (s, _) = scan_with(&seed_topic(), &wal, 1, None, &limits(CutModel::Merged, 4096));
        let m = s.message.unwrap();
        assert_eq!(shape(&m), shaped(&[("", 5)]));
        assert_eq!(s.next, 5);
        let tables: Vec<Value> = m.body.blocks()[0].rows().map(|r| r[1].clone()).collect();
        let name = |t: &str| Value::VarChar(t.into());
        assert_eq!(tables, [name("a"), name("a"), name("b"), name("a"), name("a")]);
        // Checked after whole entries: min rows 3 takes v1 and v2.
        let (s, r) = scan_with(&seed_topic(), &wal, 1, None, &limits(CutModel::Merged, 3));
        assert_eq!(shape(&s.message.unwrap()), shaped(&[("", 4)]));
        assert_eq!((s.next, r), (3, None));
        // Database topics keep a block per table per entry.
        let (s, _) = scan_with(&db_topic(false), &wal, 1, None, &limits(CutModel::Merged, 4096));
        assert_eq!(s.message.unwrap().body.blocks().len(), 4);
    }

    #[test]
    fn a_response_whose_time_is_up_closes_after_the_block_that_has_rows() {
        let wal = fleet_wal();
        let l = Limits {
            cut: CutModel::PerTableEntry,
            min_rows: 4096,
            expired: &|| true,
        };
        let (s, r) = scan_with(&seed_topic(), &wal, 1, None, &l);
        assert_eq!(shape(&s.message.unwrap()), shaped(&[("a", 2)]));
        assert_eq!((s.next, r), (2, None));
    }

    #[test]
    fn an_auto_creating_insert_is_meta_data_for_with_meta_topics_and_data_for_the_others() {
        let mut wal = Wal::new();
        let insert = Insert {
            created: vec![meta(MetaKind::Create, "tb")],
            tables: vec![rows("tb", 1, &[(100, 1)]), rows("old", 2, &[(100, 2)])],
        };
        wal.append(0, WalOp::Insert(insert));
        wal.append(0, WalOp::Meta(meta(MetaKind::Drop, "old")));

        let s = scan(&db_topic(true), &wal, 1, 10);
        let m = s.message.unwrap();
        assert_eq!((m.offset, s.next, m.body.message_type()), (1, 2, 3));
        assert_eq!(m.rows(), 2);
        let json = m.body.json_meta().unwrap();
        assert_eq!(json["tmq_meta_version"], "1.0");
        assert_eq!(
            json["metas"][0]["tableNameList"][0], "tb",
            "only the table this write created"
        );
        assert_eq!(json["metas"].as_array().unwrap().len(), 1);
        // The next meta event travels alone.
        let s = scan(&db_topic(true), &wal, 2, 10);
        assert_eq!(s.message.unwrap().body.message_type(), 2);

        for topic in [db_topic(false), seed_topic()] {
            let m = scan(&topic, &wal, 1, 10).message.unwrap();
            assert_eq!(m.body.message_type(), 1, "{}", topic.name);
            assert!(m.body.json_meta().is_none());
        }
    }

    #[test]
    fn a_query_topic_projects_columns_tbname_and_tags_in_select_order() {
        let mut wal = Wal::new();
        wal.append(0, WalOp::Meta(meta(MetaKind::Create, "tb")));
        wal.append(0, WalOp::Insert(vec![rows("tb", 1, &[(100, 1)])].into()));
        let s = scan(&seed_topic(), &wal, 1, 10);
        let m = s.message.unwrap();
        assert_eq!((m.offset, s.next, m.vgroup), (2, 3, 2));
        let Body::Data(blocks) = m.body else {
            panic!("data expected")
        };
        assert_eq!(blocks.len(), 1);
        let names: Vec<_> = blocks[0].fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["ts", "tbname", "f1", "t1"]);
        assert_eq!(
            blocks[0].rows().collect::<Vec<_>>(),
            vec![vec![
                Value::Timestamp(100),
                Value::VarChar("tb".into()),
                Value::Int(1),
                Value::Int(1)
            ]]
        );
    }

    #[test]
    fn writes_batch_up_to_the_row_cap_with_one_block_per_table() {
        let mut wal = Wal::new();
        wal.append(0, WalOp::Insert(vec![rows("a", 1, &[(1, 1), (2, 2)])].into()));
        wal.append(
            0,
            WalOp::Insert(vec![rows("b", 2, &[(1, 3)]), rows("a", 1, &[(3, 4)])].into()),
        );
        wal.append(0, WalOp::Insert(vec![rows("a", 1, &[(4, 5)])].into()));
        let topic = db_topic(false);
        let s = scan(&topic, &wal, 1, 4);
        let m = s.message.unwrap();
        assert_eq!((m.offset, s.next, m.rows()), (2, 3, 4));
        assert_eq!(shape(&m), shaped(&[("a", 2), ("b", 1), ("a", 1)]));
        let s = scan(&topic, &wal, 3, 4);
        assert_eq!(s.message.unwrap().rows(), 1);
        assert_eq!(s.next, 4);
        let s = scan(&topic, &wal, 4, 4);
        assert!(s.message.is_none());
        assert_eq!(s.next, 4);
    }

    #[test]
    fn meta_events_travel_alone_and_only_for_with_meta_topics() {
        let mut wal = Wal::new();
        wal.append(0, WalOp::Insert(vec![rows("a", 1, &[(1, 1)])].into()));
        wal.append(0, WalOp::Meta(meta(MetaKind::Drop, "a")));
        wal.append(0, WalOp::Insert(vec![rows("b", 1, &[(1, 1)])].into()));
        let with = db_topic(true);
        let m1 = scan(&with, &wal, 1, 100).message.unwrap();
        assert!(matches!(m1.body, Body::Data(_)));
        assert_eq!(m1.offset, 1);
        let m2 = scan(&with, &wal, 2, 100).message.unwrap();
        assert!(matches!(&m2.body, Body::Meta(ev) if ev.kind == MetaKind::Drop));
        assert_eq!(m2.offset, 2);
        let m3 = scan(&with, &wal, 3, 100).message.unwrap();
        assert_eq!(m3.offset, 3);
        let without = db_topic(false);
        let m = scan(&without, &wal, 1, 100).message.unwrap();
        assert_eq!((m.offset, m.rows()), (3, 2));
    }

    #[test]
    fn filters_and_other_tables_are_skipped_but_covered() {
        let mut wal = Wal::new();
        wal.append(0, WalOp::Insert(vec![rows("a", 1, &[(1, 1)])].into()));
        wal.append(0, WalOp::Insert(vec![rows("b", 2, &[(1, 1)])].into()));
        let mut topic = seed_topic();
        topic.filter = Some(Arc::new(|tr: &TableRows| tr.tags[0].1 == Value::Int(2)));
        let m = scan(&topic, &wal, 1, 100).message.unwrap();
        assert_eq!((m.offset, m.rows()), (2, 1));
        let mut other = seed_topic();
        other.kind = TopicKind::Stable {
            stable: "elsewhere".into(),
        };
        let s = scan(&other, &wal, 1, 100);
        assert!(s.message.is_none());
        assert_eq!(s.next, 3);
    }

    #[test]
    fn a_snapshot_hands_out_the_store_in_capped_chunks() {
        let store = vec![rows("a", 1, &[(1, 1), (2, 2), (3, 3)]), rows("b", 2, &[(1, 9)])];
        let mut snap = Snapshot::new(store, 11);
        let topic = seed_topic();
        assert!(!snap.is_drained(&topic));
        let mut sizes = Vec::new();
        while let Some(m) = snap.next_message(&topic, 2, 2) {
            sizes.push((m.offset, m.rows(), snap.is_drained(&topic)));
        }
        assert_eq!(sizes, [(10, 2, false), (10, 2, true)]);
        assert!(snap.next_message(&topic, 2, 2).is_none());
    }
}
