//! How a poll response is cut from a vgroup's log, by the model of the TDengine version the stand-in
//! reports (sans-IO: the log entries, the limits and a clock check are passed in). The models and their
//! sources are written up in docs/standin.md ("How a poll response is cut").
//!
//! - **Up to 3.3.x** ([`CutModel::PerTableEntry`]): every table of an insert entry is its own block
//!   (`tqNextBlockInWal` returns after one `SubmitTbData`; nothing merges consecutive writes). A query
//!   topic's response closes after the block that brings it to `min_rows`, even inside an entry
//!   (`tqScanData`), and the position after it is then the entry's version + 1 while the rest of the
//!   entry is still handed to this consumer next (the task continues where it stopped). Stable and
//!   database topics check after whole entries (`tqTaosxScanLog`).
//! - **3.4 and newer** ([`CutModel::Merged`]): a query topic's rows are appended across entries and tables
//!   into one block until `min_rows` (checked after whole entries), so a response is one block.
//!
//! A scan that does not stop at the row limit reads on to the end of the log, so the position after a
//! message is the version after everything it read (TDengine's `rspOffset`).

use std::sync::Arc;

use crate::tdengine::types::Field;
use crate::tdengine::wal::{MetaEvent, WalEntry, WalOp};

use super::group::VgroupId;
use super::message::{
    BlockSet, Body, Merge, Message, RowSource, Scan, TopicKind, TopicSpec, MAX_SCAN_ENTRIES,
};

/// How blocks are cut, by TDengine generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutModel {
    /// One block per table per log entry (3.0 – 3.3.x).
    PerTableEntry,
    /// Query topics: one block per response, rows merged across entries and tables (3.4 and newer).
    Merged,
}

/// What the reported server version decides about TMQ responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionModel {
    pub cut: CutModel,
    /// The consumer's `min.poll.rows` and `fetch.max.wait.ms` reach the vnode (3.3.6 and newer); before,
    /// the server's fixed 4096 rows and 1 s apply.
    pub client_limits: bool,
    /// The message offset a client sees is where its poll started (`reqOffset`, `tmq_get_vgroup_offset` from
    /// 3.1 on) rather than the position after the message (`rspOffset`, 3.0).
    pub offset_is_request: bool,
}

impl VersionModel {
    /// The model of `version` (`a.b.c.d`; unparsable parts count as 0).
    pub fn of(version: &str) -> Self {
        let parts: Vec<u64> = version
            .split('.')
            .map(|p| p.trim().parse().unwrap_or(0))
            .collect();
        let at_least = |v: &[u64]| parts.as_slice() >= v;
        Self {
            cut: if at_least(&[3, 4]) {
                CutModel::Merged
            } else {
                CutModel::PerTableEntry
            },
            client_limits: at_least(&[3, 3, 6]),
            offset_is_request: at_least(&[3, 1]),
        }
    }
}

/// When a response closes.
pub struct Limits<'a> {
    pub cut: CutModel,
    /// Rows after which the response closes (checked after whole blocks, or whole entries).
    pub min_rows: usize,
    /// Whether the response's time budget (`fetch.max.wait.ms`) is used up.
    pub expired: &'a dyn Fn() -> bool,
}

impl Limits<'_> {
    fn full(&self, rows: usize) -> bool {
        rows >= self.min_rows.max(1) || (rows > 0 && (self.expired)())
    }
}

/// Where a group's scan of a topic in a vgroup stands while its position is `at`: TDengine keeps one scan
/// task per subscription (group and topic) in each vnode, across consumers of the group, and continues it
/// when a poll starts where the last response ended, so the rest of an entry a response stopped inside
/// still comes next, and log entries already found to hold nothing for the topic are not read again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor {
    pub(crate) at: i64,
    pub(crate) scan_from: i64,
    pub(crate) resume: Option<Resume>,
}

/// Where a scan stopped inside a log entry: the entry's version and the index of its next table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub version: i64,
    pub table: usize,
}

/// Builds the next message of `topic` in `vgroup` from `entries` (the log from `from` on, oldest first; from
/// `resume.version` when a previous scan stopped inside that entry). A meta event ends a batch and travels
/// alone.
pub fn next_message<'a>(
    topic: &TopicSpec,
    vgroup: VgroupId,
    from: i64,
    resume: Option<Resume>,
    entries: impl IntoIterator<Item = &'a Arc<WalEntry>>,
    limits: &Limits<'_>,
) -> (Scan, Option<Resume>) {
    let projected: Option<Arc<Vec<Field>>> = match &topic.kind {
        TopicKind::Query { columns, .. } => Some(Arc::new(columns.iter().map(|p| p.field.clone()).collect())),
        _ => None,
    };
    let query = matches!(topic.kind, TopicKind::Query { .. });
    let merge = match limits.cut {
        CutModel::Merged if query => Merge::All,
        _ => Merge::None,
    };
    // Query topics up to 3.3.x close after any block; the others after whole entries.
    let per_block = query && limits.cut == CutModel::PerTableEntry;
    let mut set = BlockSet::new(merge);
    let mut created: Vec<Arc<MetaEvent>> = Vec::new();
    let mut last: Option<i64> = None;
    let mut stopped_at: Option<Resume> = None;
    let mut scanned = 0usize;
    for entry in entries {
        let first_table = match resume {
            Some(r) if entry.version == r.version => r.table,
            _ if entry.version < from => continue,
            _ => 0,
        };
        match &entry.op {
            WalOp::Insert(insert) => {
                for (i, tr) in insert.tables.iter().enumerate().skip(first_table) {
                    if !topic.wants_table(tr) {
                        continue;
                    }
                    let source = RowSource::Wal {
                        entry: entry.clone(),
                        table: i,
                    };
                    set.add(topic, projected.as_ref(), source, 0..tr.rows.len());
                    let create = insert
                        .created
                        .iter()
                        .find(|ev| ev.table.as_deref() == Some(tr.table.as_str()));
                    if let Some(ev) = create.filter(|ev| topic.wants_meta(ev)) {
                        created.push(Arc::new(ev.clone()));
                    }
                    if per_block && limits.full(set.rows) {
                        if i + 1 < insert.tables.len() {
                            stopped_at = Some(Resume {
                                version: entry.version,
                                table: i + 1,
                            });
                        }
                        break;
                    }
                }
            }
            WalOp::Meta(ev) if topic.wants_meta(ev) => {
                if set.blocks.is_empty() && created.is_empty() {
                    let message = Message {
                        topic: topic.name.clone(),
                        db: topic.db.clone(),
                        vgroup,
                        offset: entry.version,
                        body: Body::Meta(Arc::new(ev.clone())),
                    };
                    let scan = Scan {
                        next: message.next(),
                        message: Some(message),
                    };
                    return (scan, None);
                }
                break;
            }
            WalOp::Meta(_) | WalOp::Internal(_) => {}
        }
        last = Some(entry.version);
        scanned += 1;
        if stopped_at.is_some() || limits.full(set.rows) {
            break;
        }
        if set.blocks.is_empty() && scanned >= MAX_SCAN_ENTRIES {
            break;
        }
    }
    let Some(offset) = last else {
        let scan = Scan {
            message: None,
            next: from,
        };
        return (scan, None);
    };
    set.blocks.retain(|b| !b.is_empty());
    let body = match (created.is_empty(), set.blocks.is_empty()) {
        (true, true) => None,
        (true, false) => Some(Body::Data(set.blocks)),
        (false, _) => Some(Body::MetaData {
            created,
            blocks: set.blocks,
        }),
    };
    let message = body.map(|body| Message {
        topic: topic.name.clone(),
        db: topic.db.clone(),
        vgroup,
        offset,
        body,
    });
    let scan = Scan {
        message,
        next: offset + 1,
    };
    (scan, stopped_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_their_models() {
        let m = VersionModel::of("3.3.6.0");
        assert_eq!(
            (m.cut, m.client_limits, m.offset_is_request),
            (CutModel::PerTableEntry, true, true)
        );
        let m = VersionModel::of("3.3.5.2");
        assert_eq!((m.cut, m.client_limits), (CutModel::PerTableEntry, false));
        let m = VersionModel::of("3.0.7.1");
        assert!(!m.offset_is_request);
        assert_eq!(VersionModel::of("3.4.0.0").cut, CutModel::Merged);
        assert_eq!(VersionModel::of("3.3.7.0").cut, CutModel::PerTableEntry);
    }
}
