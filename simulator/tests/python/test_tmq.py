"""The official Python client (taos-ws-py, pinned by ci/setup.sh) against the TDengine stand-in.

Run by simulator/tests/python_client.rs with the stand-in's port and the version it reports:

    .venv-py/bin/python simulator/tests/python/test_tmq.py PORT VERSION

At a reported version >= 3.3.2.0 this client fetches each TMQ data message whole with `fetch_raw_data`
(TDengine's raw response format); below, block by block with `fetch` + `fetch_block`. Every check is
against values this script wrote, decoded by the client itself. Exits non-zero at the first failure.
"""

import datetime
import sys
import time

import taosws

PORT = sys.argv[1]
VERSION = sys.argv[2]
# Every poll waits at most this long; a test fails when its data has not arrived by its deadline.
POLL_S = 0.5
DEADLINE_S = 20.0
BASE_TS = 1_700_000_000_000

UTC = datetime.timezone.utc


def connect():
    return taosws.connect(f"ws://root:taosdata@127.0.0.1:{PORT}")


def consumer(group, **extra):
    conf = {
        "td.connect.websocket.scheme": "ws",
        "td.connect.ip": "127.0.0.1",
        "td.connect.port": PORT,
        "td.connect.user": "root",
        "td.connect.pass": "taosdata",
        "group.id": group,
        "auto.offset.reset": "earliest",
    }
    conf.update(extra)
    return taosws.Consumer(conf=conf)


def ts(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, tz=UTC)


def norm(row):
    """Rows compared as plain tuples: datetimes in UTC, bytes-like as bytes."""
    out = []
    for v in row:
        if isinstance(v, datetime.datetime):
            v = v.astimezone(UTC)
        elif isinstance(v, (bytearray, memoryview, list)):
            v = bytes(v)
        out.append(v)
    return tuple(out)


def drain(c, want_rows, commit=False):
    """Polls until `want_rows` rows arrived (or the deadline): [(topic, vgroup, [field names], [rows])]."""
    got, rows = [], 0
    deadline = time.monotonic() + DEADLINE_S
    while rows < want_rows:
        assert time.monotonic() < deadline, f"only {rows} of {want_rows} rows arrived: {got}"
        m = c.poll(timeout=POLL_S)
        if m is None:
            continue
        topic, vg = m.topic(), m.vgroup()
        for block in m:
            names = [f.name() if callable(getattr(f, "name", None)) else f.name for f in block.fields()]
            data = [norm(r) for r in block.fetchall()]
            assert len(data) == block.nrows(), (len(data), block.nrows())
            got.append((topic, vg, names, data))
            rows += len(data)
        if commit:
            c.commit(m)
    return got


def quiet(c, polls=3):
    """Nothing more to read: a few polls in a row come back empty."""
    for _ in range(polls):
        m = c.poll(timeout=POLL_S)
        assert m is None, f"unexpected message from vgroup {m.vgroup()}: {[b.fetchall() for b in m]}"


EVERY_COLUMNS = (
    "ts timestamp, b bool, i8 tinyint, i16 smallint, i32 int, i64 bigint, u8 tinyint unsigned, "
    "u16 smallint unsigned, u32 int unsigned, u64 bigint unsigned, f float, d double, s varchar(16), "
    "n nchar(8)"
)
EVERY_ROWS = [
    (ts(BASE_TS), True, -8, -16, -32, -64, 8, 16, 32, 64, 1.5, 2.25, "varchar", "数据nchar"),
    (ts(BASE_TS + 1), False, 127, 32767, 2147483647, 9223372036854775807, 255, 65535, 4294967295,
     18446744073709551615, -0.5, -1e300, "", "ü"),
    (ts(BASE_TS + 2),) + (None,) * 13,
]


def sql_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime.datetime):
        return str(int(v.timestamp() * 1000))
    if isinstance(v, str):
        return "'" + v + "'"
    return repr(v)


def setup_every(conn):
    conn.execute("create database if not exists py vgroups 2")
    conn.execute(f"create stable if not exists py.every ({EVERY_COLUMNS}) tags (tn nchar(8), tv varchar(8))")
    conn.execute("create stable if not exists py.js (ts timestamp, v int) tags (j json)")
    conn.execute("create topic if not exists py_every as stable py.every")
    conn.execute("create topic if not exists py_query as select ts, i32, n, tn, tv, tbname from py.every")
    conn.execute("create topic if not exists py_json as select ts, v, j, tbname from py.js")
    for table, tags in [("e1", "('标签', 'a')"), ("e2", "(NULL, NULL)")]:
        values = " ".join("(" + ", ".join(sql_literal(v) for v in r) + ")" for r in EVERY_ROWS)
        conn.execute(f"insert into py.{table} using py.every tags {tags} values {values}")
    conn.execute("insert into py.j1 using py.js tags ('{\"k\":\"v\",\"n\":1}') values (%d, 1)" % BASE_TS)
    conn.execute("insert into py.j2 using py.js tags (NULL) values (%d, 2)" % BASE_TS)


def sql_ts(text):
    """A timestamp as the client renders it in a query result ("2023-11-14 22:13:20.001 +00:00")."""
    return datetime.datetime.fromisoformat(text.replace(" +", "+")).astimezone(UTC)


def test_sql_every_type(conn):
    got = [(sql_ts(r[0]),) + norm(r[1:]) for r in conn.query("select * from py.e1 order by ts")]
    assert got == [norm(r) for r in EVERY_ROWS], got
    got = [norm(r) for r in conn.query("select tbname, tn, tv from py.every where ts = %d order by tbname" % BASE_TS)]
    assert got == [("e1", "标签", "a"), ("e2", None, None)], got
    got = [(r[0], sql_ts(r[1])) for r in conn.query("select tbname, ts from py.every order by tbname, ts")]
    assert got == [(t, ts(BASE_TS + i)) for t in ("e1", "e2") for i in range(3)], got


def test_tmq_every_type():
    c = consumer("py-every")
    c.subscribe(["py_every"])
    got = drain(c, 2 * len(EVERY_ROWS))
    names = [c.split()[0] for c in EVERY_COLUMNS.split(", ")]
    rows = []
    for topic, _vg, fields, data in got:
        assert topic == "py_every"
        assert fields == names, fields
        rows += data
    assert sorted(rows, key=repr) == sorted([norm(r) for r in EVERY_ROWS] * 2, key=repr), rows
    quiet(c)
    c.close()


def test_tmq_query_topic_tags_and_json():
    c = consumer("py-query")
    c.subscribe(["py_query", "py_json"])
    got = drain(c, 2 * len(EVERY_ROWS) + 2)
    rows = {}
    for topic, _vg, fields, data in got:
        rows.setdefault(topic, []).extend(data)
        if topic == "py_query":
            assert fields == ["ts", "i32", "n", "tn", "tv", "tbname"], fields
        else:
            assert fields == ["ts", "v", "j", "tbname"], fields
    want = sorted(
        [(r[0], r[4], r[13], "标签", "a", "e1") for r in EVERY_ROWS]
        + [(r[0], r[4], r[13], None, None, "e2") for r in EVERY_ROWS],
        key=repr,
    )
    assert sorted(rows["py_query"], key=repr) == want, rows["py_query"]
    js = sorted(rows["py_json"], key=lambda r: r[1])
    assert [(r[0], r[1], r[3]) for r in js] == [(ts(BASE_TS), 1, "j1"), (ts(BASE_TS), 2, "j2")], js
    import json

    assert json.loads(js[0][2]) == {"k": "v", "n": 1}, js[0][2]
    assert js[1][2] is None, js[1][2]
    quiet(c)
    c.close()


def test_with_meta(conn):
    conn.execute("create database if not exists pym vgroups 1")
    conn.execute("create topic if not exists pym_meta with meta as database pym")
    c = consumer("py-meta")
    c.subscribe(["pym_meta"])
    conn.execute("create stable pym.st (ts timestamp, v int) tags (t int)")
    conn.execute("create table pym.c1 using pym.st tags (1)")
    conn.execute("insert into pym.c1 values (%d, 1)" % BASE_TS)
    conn.execute("insert into pym.c2 using pym.st tags (2) values (%d, 2)" % BASE_TS)
    conn.execute("alter stable pym.st add column w int")
    conn.execute("insert into pym.c1 values (%d, 3, 30)" % (BASE_TS + 1))
    # create stable, create child, data, meta+data (auto-create), alter, data: the meta messages carry no
    # blocks, the data after an alter has the new column.
    got = drain(c, 3)
    data = [(fields, rows) for _t, _vg, fields, rows in got]
    assert data == [
        (["ts", "v"], [(ts(BASE_TS), 1)]),
        (["ts", "v"], [(ts(BASE_TS), 2)]),
        (["ts", "v", "w"], [(ts(BASE_TS + 1), 3, 30)]),
    ], data
    quiet(c)
    c.close()


def test_commit_position_committed_seek(conn):
    conn.execute("create database if not exists pyc vgroups 2")
    conn.execute("create stable if not exists pyc.st (ts timestamp, v int) tags (t int)")
    conn.execute("create topic if not exists pyc_t as stable pyc.st")
    for i in range(8):
        conn.execute("insert into pyc.t%d using pyc.st tags (%d) values (%d, %d)" % (i, i, BASE_TS, i))
    c = consumer("py-commit")
    c.subscribe(["pyc_t"])
    [a] = c.assignment()
    assert a.topic() == "pyc_t"
    vgroups = {x.vg_id(): (x.begin(), x.end()) for x in a.assignments()}
    assert len(vgroups) == 2, vgroups
    for vg in vgroups:
        assert c.committed("pyc_t", vg) == -2147467247, c.committed("pyc_t", vg)
    seen = {}
    deadline = time.monotonic() + DEADLINE_S
    while sum(len(v) for v in seen.values()) < 8:
        assert time.monotonic() < deadline, seen
        m = c.poll(timeout=POLL_S)
        if m is None:
            continue
        vg = m.vgroup()
        seen.setdefault(vg, []).extend(r[1] for b in m for r in b.fetchall())
        pos = c.position("pyc_t", vg)
        c.commit(m)
        assert c.committed("pyc_t", vg) == pos, (c.committed("pyc_t", vg), pos)
    quiet(c)
    # Every row read: each position is past the log end seen at subscribe. Commits write to the vgroup's
    # WAL too (TMQ_COMMIT_OFFSET takes a version), so the log may have grown past the position since.
    [now] = c.assignment()
    ends = {x.vg_id(): x.end() for x in now.assignments()}
    for vg, (begin, end) in vgroups.items():
        assert end <= c.position("pyc_t", vg) <= ends[vg], (vg, c.position("pyc_t", vg), end, ends[vg])
    # Seek back to the start of one vgroup: its rows come again, the other's do not.
    vg = sorted(vgroups)[0]
    c.seek("pyc_t", vg, vgroups[vg][0])
    again = drain(c, len(seen[vg]))
    assert sorted(r[1] for _t, v, _f, rows in again for r in rows) == sorted(seen[vg]), again
    assert all(v == vg for _t, v, _f, _r in again), again
    # commit_offset moves the group's committed offset; a new consumer of the group resumes there.
    c.commit_offset("pyc_t", vg, vgroups[vg][0])
    assert c.committed("pyc_t", vg) == vgroups[vg][0]
    c.unsubscribe()
    c.close()
    c2 = consumer("py-commit")
    c2.subscribe(["pyc_t"])
    resumed = drain(c2, len(seen[vg]))
    assert sorted(r[1] for _t, _v, _f, rows in resumed for r in rows) == sorted(seen[vg]), resumed
    quiet(c2)
    c2.close()
    assert sorted(v for vs in seen.values() for v in vs) == list(range(8)), seen


def test_two_consumers_split_vgroups(conn):
    conn.execute("create database if not exists pys vgroups 4")
    conn.execute("create stable if not exists pys.st (ts timestamp, v int) tags (t int)")
    conn.execute("create topic if not exists pys_t as stable pys.st")
    for i in range(16):
        conn.execute("insert into pys.t%d using pys.st tags (%d) values (%d, %d)" % (i, i, BASE_TS, i))
    a, b = consumer("py-split"), consumer("py-split")
    a.subscribe(["pys_t"])
    b.subscribe(["pys_t"])

    def vgs(c):
        return sorted(x.vg_id() for t in c.assignment() for x in t.assignments())

    deadline = time.monotonic() + DEADLINE_S
    while not (vgs(a) and vgs(b) and len(vgs(a) + vgs(b)) == 4):
        assert time.monotonic() < deadline, (vgs(a), vgs(b))
        a.poll(timeout=0.05)
        b.poll(timeout=0.05)
    assert not set(vgs(a)) & set(vgs(b)), (vgs(a), vgs(b))
    rows = {}
    deadline = time.monotonic() + DEADLINE_S
    while sum(len(v) for v in rows.values()) < 16:
        assert time.monotonic() < deadline, rows
        for name, c in (("a", a), ("b", b)):
            m = c.poll(timeout=0.1)
            if m is not None:
                assert m.vgroup() in vgs(c), (name, m.vgroup(), vgs(c))
                rows.setdefault(name, []).extend(r[1] for blk in m for r in blk.fetchall())
    assert set(rows) == {"a", "b"}, rows
    assert sorted(rows["a"] + rows["b"]) == list(range(16)), rows
    a.close()
    b.close()


def main():
    conn = connect()
    version = [r[0] for r in conn.query("select server_version()")]
    assert version == [VERSION], (version, VERSION)
    setup_every(conn)
    tests = [
        lambda: test_sql_every_type(conn),
        test_tmq_every_type,
        test_tmq_query_topic_tags_and_json,
        lambda: test_with_meta(conn),
        lambda: test_commit_position_committed_seek(conn),
        lambda: test_two_consumers_split_vgroups(conn),
    ]
    names = [
        "sql_every_type",
        "tmq_every_type",
        "tmq_query_topic_tags_and_json",
        "with_meta",
        "commit_position_committed_seek",
        "two_consumers_split_vgroups",
    ]
    for name, test in zip(names, tests):
        print(f"{name} ...", flush=True)
        test()
        print(f"{name} ok", flush=True)
    print(f"all passed at server version {VERSION}")


if __name__ == "__main__":
    main()
