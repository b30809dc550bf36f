//! The fleet's write log: every statement it executed and its outcome, row by row, with which earlier
//! write each row replaced and which rows a delete or drop removed. From it a verifier knows
//! exactly which rows must exist ([`WriteLog::expected_rows`]) and which writes a change stream
//! (TMQ) carries. Written as NDJSON (one [`WriteLogEntry`] per line) and replayable from that file.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use super::plan::{RowWrite, Step};
use super::reading::{Reading, Tags};

/// One line of the write log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriteLogEntry {
    /// Position in the write log, from 1.
    pub seq: u64,
    /// Index of the statement (from 0); all rows of one INSERT share it.
    pub step: u64,
    #[serde(flatten)]
    pub what: Entry,
    pub outcome: Outcome,
    /// TDengine's error for a rejected statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The statement was sent again after a connection error, so it may have been applied twice
    /// (a change stream may then carry the same rows twice).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retried: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Rejected,
    /// The fleet gave up on the connection while this statement was outstanding: it may or may
    /// not have been applied (not counted in [`WriteLog::expected_rows`]).
    Unknown,
}

/// What an entry records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    CreateDatabase {
        db: String,
        vgroups: u32,
    },
    CreateStable {
        db: String,
    },
    CreateTable {
        table: String,
        tags: Tags,
    },
    Row {
        #[serde(flatten)]
        row: RowWrite,
        /// `seq` of the live row with the same table and timestamp this write replaced.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<u64>,
    },
    AddColumn {
        column: String,
        #[serde(rename = "type")]
        ty: String,
    },
    DeleteRange {
        table: String,
        from_ms: i64,
        to_ms: i64,
        /// `seq`s of the rows the delete removed.
        removed: Vec<u64>,
    },
    DropTable {
        table: String,
        /// `seq`s of the rows that went with the table.
        removed: Vec<u64>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum WriteLogError {
    #[error("write log line {line}: {source}")]
    Parse { line: usize, source: serde_json::Error },
    #[error("write log I/O: {0}")]
    Io(#[from] io::Error),
}

#[derive(Clone, Debug, Default)]
struct TableState {
    tags: Option<Tags>,
    /// ts → (seq of the write, values)
    rows: BTreeMap<i64, (u64, Reading)>,
}

/// The write log, its derived state, and an optional NDJSON sink.
pub struct WriteLog {
    db: String,
    keep_entries: bool,
    entries: Vec<WriteLogEntry>,
    tables: BTreeMap<String, TableState>,
    added_column: bool,
    next_seq: u64,
    next_step: u64,
    rows_ok: u64,
    rows_rejected: u64,
    statements_rejected: u64,
    sink: Option<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for WriteLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteLog")
            .field("db", &self.db)
            .field("entries", &self.next_seq.saturating_sub(1))
            .field("rows_ok", &self.rows_ok)
            .field("rows_rejected", &self.rows_rejected)
            .finish()
    }
}

impl WriteLog {
    /// An empty write log for database `db` that keeps its entries in memory.
    pub fn new(db: impl Into<String>) -> WriteLog {
        WriteLog {
            db: db.into(),
            keep_entries: true,
            entries: Vec::new(),
            tables: BTreeMap::new(),
            added_column: false,
            next_seq: 1,
            next_step: 0,
            rows_ok: 0,
            rows_rejected: 0,
            statements_rejected: 0,
            sink: None,
        }
    }

    /// Keeps only the derived state (expected rows) in memory, not every entry (long runs).
    pub fn without_entries(mut self) -> WriteLog {
        self.keep_entries = false;
        self
    }

    /// Also writes every entry as one JSON line to `sink`.
    pub fn with_sink(mut self, sink: Box<dyn Write + Send>) -> WriteLog {
        self.sink = Some(sink);
        self
    }

    pub fn db(&self) -> &str {
        &self.db
    }

    /// Records the outcome of executing `step` (`Err` carries TDengine's rejection).
    pub fn record(&mut self, step: &Step, outcome: Result<(), String>, retried: bool) -> io::Result<()> {
        let (outcome, error) = match outcome {
            Ok(()) => (Outcome::Ok, None),
            Err(e) => {
                self.statements_rejected += 1;
                (Outcome::Rejected, Some(e))
            }
        };
        self.record_outcome(step, outcome, error, retried)
    }

    /// Records a statement whose fate is unknown (the connection was given up while it was out).
    pub fn record_unknown(&mut self, step: &Step, error: &str) -> io::Result<()> {
        self.record_outcome(step, Outcome::Unknown, Some(error.to_string()), true)
    }

    fn record_outcome(
        &mut self,
        step: &Step,
        outcome: Outcome,
        error: Option<String>,
        retried: bool,
    ) -> io::Result<()> {
        let step_no = self.next_step;
        self.next_step += 1;
        let whats: Vec<Entry> = match step {
            Step::CreateDatabase { vgroups } => vec![Entry::CreateDatabase {
                db: self.db.clone(),
                vgroups: *vgroups,
            }],
            Step::CreateStable => vec![Entry::CreateStable { db: self.db.clone() }],
            Step::CreateTable { table, tags } => vec![Entry::CreateTable {
                table: table.clone(),
                tags: tags.clone(),
            }],
            Step::Insert { rows } => {
                match outcome {
                    Outcome::Ok => self.rows_ok += rows.len() as u64,
                    Outcome::Rejected => self.rows_rejected += rows.len() as u64,
                    Outcome::Unknown => {}
                }
                rows.iter()
                    .map(|row| Entry::Row {
                        row: row.clone(),
                        // Filled in by `apply` for rows that took effect.
                        replaces: None,
                    })
                    .collect()
            }
            Step::AddColumn { name, ty } => vec![Entry::AddColumn {
                column: name.clone(),
                ty: ty.clone(),
            }],
            Step::DeleteRange {
                table,
                from_ms,
                to_ms,
            } => vec![Entry::DeleteRange {
                table: table.clone(),
                from_ms: *from_ms,
                to_ms: *to_ms,
                removed: Vec::new(),
            }],
            Step::DropTable { table } => vec![Entry::DropTable {
                table: table.clone(),
                removed: Vec::new(),
            }],
        };
        for what in whats {
            let mut entry = WriteLogEntry {
                seq: self.next_seq,
                step: step_no,
                what,
                outcome,
                error: error.clone(),
                retried,
            };
            self.next_seq += 1;
            self.apply(&mut entry, true);
            if let Some(sink) = &mut self.sink {
                serde_json::to_writer(&mut *sink, &entry)?;
                sink.write_all(b"\n")?;
            }
            if self.keep_entries {
                self.entries.push(entry);
            }
        }
        Ok(())
    }

    /// Updates the derived state; with `fill`, computes `replaces`/`removed` from it.
    fn apply(&mut self, entry: &mut WriteLogEntry, fill: bool) {
        if entry.outcome != Outcome::Ok {
            return;
        }
        let seq = entry.seq;
        match &mut entry.what {
            Entry::CreateDatabase { .. } | Entry::CreateStable { .. } => {}
            Entry::CreateTable { table, tags } => {
                self.tables.entry(table.clone()).or_default().tags = Some(tags.clone());
            }
            Entry::Row { row, replaces } => {
                let state = self.tables.entry(row.table.clone()).or_default();
                let previous = state.rows.insert(row.ts, (seq, row.reading));
                if fill {
                    *replaces = previous.map(|(s, _)| s);
                }
            }
            Entry::AddColumn { .. } => self.added_column = true,
            Entry::DeleteRange {
                table,
                from_ms,
                to_ms,
                removed,
            } => {
                if let Some(state) = self.tables.get_mut(table.as_str()) {
                    let keys: Vec<i64> = state.rows.range(*from_ms..=*to_ms).map(|(k, _)| *k).collect();
                    let gone: Vec<u64> = keys
                        .iter()
                        .filter_map(|k| state.rows.remove(k).map(|(s, _)| s))
                        .collect();
                    if fill {
                        *removed = gone;
                    }
                }
            }
            Entry::DropTable { table, removed } => {
                if let Some(state) = self.tables.remove(table.as_str()) {
                    if fill {
                        *removed = state.rows.values().map(|(s, _)| *s).collect();
                    }
                }
            }
        }
    }

    /// Every entry recorded so far (empty after [`WriteLog::without_entries`]).
    pub fn entries(&self) -> &[WriteLogEntry] {
        &self.entries
    }

    /// The rows that must exist now, per table and timestamp, as `SELECT *` returns them: rows
    /// written before the mid-run column was added show it as NULL.
    pub fn expected_rows(&self) -> BTreeMap<String, BTreeMap<i64, Reading>> {
        self.tables
            .iter()
            .map(|(table, state)| {
                let rows = state
                    .rows
                    .iter()
                    .map(|(ts, (_, reading))| {
                        let mut reading = *reading;
                        if self.added_column && reading.power.is_none() {
                            reading.power = Some(None);
                        }
                        (*ts, reading)
                    })
                    .collect();
                (table.clone(), rows)
            })
            .collect()
    }

    /// The child tables that must exist now, with their tags (`None` when the fleet did not create
    /// the table itself but wrote to it).
    pub fn expected_tables(&self) -> BTreeMap<String, Option<Tags>> {
        self.tables
            .iter()
            .map(|(t, s)| (t.clone(), s.tags.clone()))
            .collect()
    }

    /// Whether the mid-run column exists.
    pub fn has_added_column(&self) -> bool {
        self.added_column
    }

    /// Rows in accepted inserts (updates included).
    pub fn rows_written(&self) -> u64 {
        self.rows_ok
    }

    /// Rows in inserts TDengine rejected.
    pub fn rows_rejected(&self) -> u64 {
        self.rows_rejected
    }

    pub fn statements_rejected(&self) -> u64 {
        self.statements_rejected
    }

    /// Flushes the NDJSON sink.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Some(sink) => sink.flush(),
            None => Ok(()),
        }
    }

    /// Rebuilds a write log (entries and expected state) from its NDJSON form.
    pub fn from_ndjson(db: impl Into<String>, reader: impl BufRead) -> Result<WriteLog, WriteLogError> {
        let mut write_log = WriteLog::new(db);
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let mut entry: WriteLogEntry =
                serde_json::from_str(&line).map_err(|source| WriteLogError::Parse { line: i + 1, source })?;
            match (&entry.what, entry.outcome) {
                (Entry::Row { .. }, Outcome::Ok) => write_log.rows_ok += 1,
                (Entry::Row { .. }, Outcome::Rejected) => write_log.rows_rejected += 1,
                _ => {}
            }
            if entry.outcome == Outcome::Rejected && entry.step + 1 != write_log.next_step {
                write_log.statements_rejected += 1;
            }
            write_log.next_seq = entry.seq + 1;
            write_log.next_step = entry.step + 1;
            write_log.apply(&mut entry, false);
            write_log.entries.push(entry);
        }
        Ok(write_log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meters::plan::RowKind;

    fn row(table: &str, ts: i64, current: f32) -> RowWrite {
        RowWrite {
            table: table.into(),
            ts,
            reading: Reading {
                current: Some(current),
                voltage: Some(220),
                phase: None,
                power: None,
            },
            kind: RowKind::InOrder,
        }
    }

    fn tags() -> Tags {
        Tags {
            groupid: 1,
            location: "California.Campbell".into(),
        }
    }

    /// A shared buffer so the test can read what the sink got.
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn replacements_deletions_drops_and_rejections_are_accounted() {
        let buf = Buf::default();
        let mut l = WriteLog::new("power").with_sink(Box::new(buf.clone()));
        for t in ["d0", "d1"] {
            l.record(
                &Step::CreateTable {
                    table: t.into(),
                    tags: tags(),
                },
                Ok(()),
                false,
            )
            .unwrap();
        }
        let insert = |rows| Step::Insert { rows };
        l.record(
            &insert(vec![row("d0", 1, 1.0), row("d0", 2, 2.0), row("d1", 1, 3.0)]),
            Ok(()),
            false,
        )
        .unwrap();
        // seq 3..=5 are those rows; replace d0@2 (seq 4).
        l.record(&insert(vec![row("d0", 2, 9.0)]), Ok(()), true).unwrap();
        l.record(
            &insert(vec![row("d0", 3, 7.0)]),
            Err("[0x2603] nope".into()),
            false,
        )
        .unwrap();
        l.record(
            &Step::AddColumn {
                name: "power".into(),
                ty: "FLOAT".into(),
            },
            Ok(()),
            false,
        )
        .unwrap();
        l.record(
            &Step::DeleteRange {
                table: "d0".into(),
                from_ms: 0,
                to_ms: 1,
            },
            Ok(()),
            false,
        )
        .unwrap();
        l.record(&Step::DropTable { table: "d1".into() }, Ok(()), false)
            .unwrap();

        let expected = l.expected_rows();
        assert_eq!(expected.len(), 1, "d1 dropped");
        let d0 = &expected["d0"];
        assert_eq!(d0.len(), 1);
        assert_eq!(d0[&2].current, Some(9.0));
        assert_eq!(d0[&2].power, Some(None), "added column reads NULL");
        assert_eq!(l.rows_written(), 4);
        assert_eq!(l.rows_rejected(), 1);
        assert_eq!(l.statements_rejected(), 1);

        let e = l.entries();
        let update = e.iter().find(|e| e.step == 3).unwrap();
        assert!(matches!(
            update.what,
            Entry::Row {
                replaces: Some(4),
                ..
            }
        ));
        assert!(update.retried);
        let delete = e
            .iter()
            .find(|e| matches!(e.what, Entry::DeleteRange { .. }))
            .unwrap();
        assert!(matches!(&delete.what, Entry::DeleteRange { removed, .. } if removed == &vec![3]));
        let drop = e
            .iter()
            .find(|e| matches!(e.what, Entry::DropTable { .. }))
            .unwrap();
        assert!(matches!(&drop.what, Entry::DropTable { removed, .. } if removed == &vec![5]));

        // The NDJSON form replays to the same write log.
        let text = String::from_utf8(buf.0.lock().clone()).unwrap();
        assert_eq!(text.lines().count(), e.len());
        assert!(text.lines().next().unwrap().contains(r#""event":"create_table""#));
        let replayed = WriteLog::from_ndjson("power", text.as_bytes()).unwrap();
        assert_eq!(replayed.entries(), l.entries());
        assert_eq!(replayed.expected_rows(), expected);
        assert_eq!(replayed.rows_written(), 4);
        assert_eq!(replayed.rows_rejected(), 1);
        assert_eq!(replayed.statements_rejected(), 1);
    }

    #[test]
    fn unknown_outcomes_are_recorded_but_not_expected() {
        let mut l = WriteLog::new("power");
        l.record_unknown(
            &Step::Insert {
                rows: vec![row("d0", 1, 1.0)],
            },
            "gone",
        )
        .unwrap();
        assert!(l.expected_rows().is_empty());
        assert_eq!((l.rows_written(), l.rows_rejected()), (0, 0));
        let e = &l.entries()[0];
        assert_eq!(e.outcome, Outcome::Unknown);
        assert!(e.retried);
        let json = serde_json::to_string(e).unwrap();
        assert!(json.contains(r#""outcome":"unknown""#), "{json}");
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = WriteLog::from_ndjson("db", "\n{not json}\n".as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("write log line 2:"), "{err}");
    }
}
