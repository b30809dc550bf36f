//! Whatever a client sends, the parser and executor answer with a result or a TDengine error.

use crate::tdengine::store::Store;
use proptest::prelude::*;

const WORDS: &[&str] = &[
    "create",
    "database",
    "db",
    "stable",
    "table",
    "st",
    "t1",
    "using",
    "tags",
    "(",
    ")",
    ",",
    ";",
    "insert",
    "into",
    "values",
    "select",
    "*",
    "from",
    "where",
    "ts",
    "v",
    ">",
    "=",
    "<=",
    "and",
    "or",
    "now",
    "+",
    "-",
    "1s",
    "1",
    "-1",
    "1.5",
    "'x'",
    "'北京'",
    "null",
    "timestamp",
    "int",
    "nchar",
    "varchar(4)",
    "drop",
    "alter",
    "add",
    "column",
    "tag",
    "set",
    "delete",
    "show",
    "tables",
    "topic",
    "as",
    "with",
    "meta",
    "describe",
    "count(*)",
    "order",
    "by",
    "desc",
    "limit",
    "if",
    "not",
    "exists",
    "`q`",
    ".",
    "tbname",
    "use",
    "vgroups",
    "precision",
    "'us'",
    "9223372036854775808",
    "in",
    "is",
];

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
        let store = Store::default();
        let _ = store.execute(&s, &mut None);
    }

    #[test]
    fn token_soup_never_panics(words in prop::collection::vec(prop::sample::select(WORDS), 0..30)) {
        let store = Store::default();
        let mut db = None;
        store
            .execute(
                "create database db vgroups 3; use db; \
                 create stable st (ts timestamp, v int, s nchar(2)) tags (g int); \
                 create table t1 using st tags (1); insert into t1 values (1, 1, 'a')",
                &mut db,
            )
            .unwrap();
        let _ = store.execute(&words.join(" "), &mut db);
        // The store stays usable (the soup may have dropped anything, so only ask what must exist).
        let dbs = store.execute("show databases", &mut db).unwrap();
        prop_assert!(dbs.rows.len() >= 2);
    }
}
