"""The invariants a chaos run checks once every request is terminal, read
from PostgreSQL with psql (and from the logs and a pg_dump), and the table
they are printed as. Each check adds one row: its name, how many things it
checked, how many violated it, and up to a few examples of the violations.
Rows whose violations are None are informational.
"""

import hashlib
import hmac
import json
import os
import subprocess

PG_BIN = "/usr/lib/postgresql/15/bin"
EXAMPLES = 5


class Db:
    def __init__(self, url):
        self.url = url

    def rows(self, sql):
        out = subprocess.run(
            [f"{PG_BIN}/psql", "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
             self.url, "-c", sql], check=True, capture_output=True,
            text=True).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def value(self, sql):
        rows = self.rows(sql)
        return rows[0][0] if rows else None

    def has_column(self, table, column):
        return self.value(
            "SELECT count(*) FROM information_schema.columns WHERE "
            f"table_name = '{table}' AND column_name = '{column}'") == "1"


class Checks:
    def __init__(self):
        self.table = []  # (name, checked, violations or None, examples)

    def add(self, name, checked, bad, info=None):
        """bad: the list of violations (examples are its first items)."""
        if info is not None:
            self.table.append((name, checked, None, [info]))
        else:
            self.table.append((name, checked, len(bad), bad[:EXAMPLES]))

    def failed(self):
        return sum(1 for _, _, v, _ in self.table if v)

    def print(self):
        width = max(len(name) for name, *_ in self.table)
        print(f"{'invariant':<{width}}  {'checked':>8}  {'violations':>10}")
        for name, checked, bad, examples in self.table:
            shown = "-" if bad is None else str(bad)
            print(f"{name:<{width}}  {checked:>8}  {shown:>10}")
            for e in examples:
                if bad or bad is None:
                    print(f"{'':<{width}}    {e}")


def subject_key_hex(secret_file, subject):
    secret = bytes.fromhex(open(secret_file).read().strip())
    return hmac.new(secret, subject.encode(), hashlib.sha256).hexdigest()


def check_requests(c, db, journal):
    """One request per idempotency key, the ids clients saw, replays. Only
    the chaos submitter key submits, so keys are unique across the table."""
    db_ids = dict(db.rows("SELECT idempotency_key, id FROM erasure_requests"))
    dup = db.rows("SELECT client_key_id, idempotency_key, count(*) FROM "
                  "erasure_requests GROUP BY 1, 2 HAVING count(*) > 1")
    bad = [f"key {k}/{i}: {n} requests" for k, i, n in dup]
    for key in journal.subject:
        seen = journal.ids.get(key, set())
        if key not in db_ids:
            bad.append(f"key {key}: no request in the database")
        elif seen and seen != {db_ids[key]}:
            bad.append(f"key {key}: clients saw {sorted(seen)}, "
                       f"database has {db_ids[key]}")
    extra = set(db_ids) - set(journal.subject)
    bad += [f"request {db_ids[k]} under key {k} never submitted" for k in extra]
    c.add("one request per (client key, idempotency key)", len(journal.subject),
          bad)
    c.add("every submission answered", len(journal.subject),
          [f"key {k}: no answer before the deadline" for k in journal.unanswered])
    replays = journal.replays
    c.add("replay (same key, same body) returns the request",
          len(replays), [f"{k}: {what}" for k, ok, what in replays if not ok])
    conflicts = journal.conflicts
    c.add("same key, other body: ALREADY_EXISTS", len(conflicts),
          [f"{k}: {what}" for k, ok, what in conflicts if not ok])
    return db_ids


def check_states(c, db, models):
    rows = db.rows("SELECT id, state, state_reason FROM erasure_requests")
    c.add("every request COMPLETED", len(rows),
          [f"{i}: {s} {r}" for i, s, r in rows if s != "COMPLETED"])
    tasks = db.rows(
        "SELECT t.erasure_id, m.name, t.state, t.result_version, t.attempts, "
        "left(t.last_error, 120) FROM erasure_tasks t "
        "JOIN models m ON m.id = t.model_id")
    c.add("every task DONE with a result version", len(tasks),
          [f"{e} on {m}: {s} v{v or '-'} attempts {a} {err}"
           for e, m, s, v, a, err in tasks if s != "DONE" or not v])
    per_request = db.rows(
        "SELECT r.id, count(t.id), count(DISTINCT t.model_id) "
        "FROM erasure_requests r LEFT JOIN erasure_tasks t "
        "ON t.erasure_id = r.id GROUP BY r.id")
    c.add(f"one task per (request, model), {len(models)} models",
          len(per_request),
          [f"{r}: {n} tasks on {d} models" for r, n, d in per_request
           if int(n) != len(models) or int(d) != len(models)])
    dangling = db.rows(
        "SELECT t.erasure_id, t.model_id, t.result_version FROM erasure_tasks t "
        "LEFT JOIN model_versions v ON v.model_id = t.model_id "
        "AND v.version = t.result_version "
        "WHERE t.result_version IS NOT NULL AND v.version IS NULL")
    c.add("each result version exists", len(tasks),
          [f"{e} on {m}: v{v} missing" for e, m, v in dangling])
    forks = db.rows(
        "SELECT m.name, v.version, v.parent_version FROM model_versions v "
        "JOIN models m ON m.id = v.model_id "
        "WHERE v.parent_version <> v.version - 1")
    nversions = db.value("SELECT count(*) FROM model_versions")
    c.add("version history linear (parent = version - 1)", int(nversions),
          [f"{m} v{v} has parent v{p}" for m, v, p in forks])
    idle = db.rows(
        "SELECT m.name, v.version FROM model_versions v "
        "JOIN models m ON m.id = v.model_id WHERE v.parent_version > 0 "
        "AND NOT EXISTS (SELECT 1 FROM erasure_tasks t WHERE "
        "t.model_id = v.model_id AND t.result_version = v.version)")
    c.add("every unlearning version absorbed a task", int(nversions),
          [f"{m} v{v}: no task names it" for m, v in idle])


def check_certificates(c, db, verified):
    rows = db.rows(
        "SELECT r.id, r.state, count(c.leaf_index) FROM erasure_requests r "
        "LEFT JOIN certificates c ON c.request_id = r.id "
        "AND c.supersedes IS NULL GROUP BY r.id, r.state")
    bad = [f"{i} ({s}): {n} completion certificates" for i, s, n in rows
           if (s == "COMPLETED") != (int(n) == 1) or int(n) > 1]
    c.add("one completion certificate per COMPLETED request", len(rows), bad)
    c.add("sampled certificates verify (lethectl verify)", len(verified),
          [f"{rid}: {why}" for rid, ok, why in verified if not ok])


def check_records(c, db, data, secret_file, erased):
    """Records of erased subjects gone, every other subject's untouched."""
    counts = {}
    for key, split, n in db.rows(
            "SELECT encode(subject_key, 'hex'), split, count(*) FROM records "
            "GROUP BY 1, 2"):
        counts[(key, split)] = int(n)
    known = set()
    gone, kept = [], []
    for subject in data.train_subjects:
        key = subject_key_hex(secret_file, subject)
        known.add(key)
        n = counts.get((key, "train"), 0) + counts.get((key, "test"), 0)
        if subject in erased:
            if n:
                gone.append(f"{subject}: {n} records left")
        elif counts.get((key, "train"), 0) != data.k:
            kept.append(f"{subject}: {n} records, uploaded {data.k}")
    for subject in data.holdout_subjects:
        key = subject_key_hex(secret_file, subject)
        known.add(key)
        if counts.get((key, "test"), 0) != data.k_test:
            kept.append(f"{subject}: {counts.get((key, 'test'), 0)} test "
                        f"records, uploaded {data.k_test}")
    strangers = {k for k, _ in counts} - known
    kept += [f"records of an unknown subject key {k[:12]}..." for k in strangers]
    c.add("records of erased subjects gone", len(erased), gone)
    c.add("records of other subjects untouched",
          len(data.train_subjects) - len(erased) + len(data.holdout_subjects),
          kept)


def check_training_sets(c, db, data):
    """No live version trained on a completed subject: every subject has
    exactly K train records, so a version's retain + forget records must be
    K * (S - A), A being the requests the model absorbed before it."""
    rows = db.rows(
        "SELECT m.name, v.version, v.produced_by, "
        "(v.report->>'forget_records')::bigint, "
        "(v.report->>'retain_records')::bigint, "
        "(SELECT count(DISTINCT t.erasure_id) FROM erasure_tasks t "
        " WHERE t.model_id = v.model_id AND t.state = 'DONE' "
        " AND t.result_version < v.version) "
        "FROM model_versions v JOIN models m ON m.id = v.model_id "
        "WHERE v.parent_version > 0 AND v.report IS NOT NULL "
        "AND v.produced_by <> 'none' ORDER BY m.name, v.version")
    bad = []
    surplus_total = 0
    for name, version, method, forget, retain, absorbed in rows:
        bound = data.k * (len(data.train_subjects) - int(absorbed))
        seen = int(forget) + int(retain)
        if seen != bound:
            surplus = seen - bound
            surplus_total += max(surplus, 0)
            bad.append(f"{name} v{version} ({method}): retain {retain} + "
                       f"forget {forget} = {seen}, bound K*(S-A) = "
                       f"{data.k}*({len(data.train_subjects)}-{absorbed}) = "
                       f"{bound}, surplus {surplus:+d} "
                       f"(~{surplus / data.k:+.0f} erased subjects)")
    c.add("no version trained on an absorbed subject (K*(S-A))", len(rows),
          bad)
    if bad:
        # Every offending version, not only the first few.
        c.table[-1] = (c.table[-1][0], c.table[-1][1], len(bad), bad)


def check_raw_ids(c, files, dump_file, prefixes):
    """No subject id in any log or in a dump of the database."""
    bad = []
    scanned = 0
    for path in [*files, dump_file]:
        scanned += 1
        with open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                if any(p.encode() in line for p in prefixes):
                    bad.append(f"{os.path.basename(path)}:{n}: "
                               f"{line[:100].decode(errors='replace').strip()}")
    c.add("no raw subject id in logs or pg_dump", scanned, bad)


def check_attempts(c, db):
    parts = [f"attempts (claims) max {db.value('SELECT max(attempts) FROM erasure_tasks')}"]
    for column in ("failures", "lost_leases"):
        if db.has_column("erasure_tasks", column):
            parts.append(f"{column} max "
                         f"{db.value(f'SELECT max({column}) FROM erasure_tasks')}")
        else:
            parts.append(f"{column}: no such column yet")
    tasks = db.value("SELECT count(*) FROM erasure_tasks")
    c.add("task attempts (information)", int(tasks), [], info=", ".join(parts))


def check_versions(c, db):
    rows = db.rows("SELECT produced_by, count(*) FROM model_versions "
                   "GROUP BY 1 ORDER BY 1")
    c.add("model versions by method (information)",
          sum(int(n) for _, n in rows), [],
          info=", ".join(f"{m} {n}" for m, n in rows))


def check_processes(c, exits, starts):
    c.add("no process exited unless killed", starts,
          [f"{name} exited with status {status} at {t} s"
           for name, status, t in exits])


def check_error_messages(c, journal, pg_port):
    """What clients were told never names the database's address."""
    needles = [str(pg_port), "postgresql://", "host=", "user=", "lethe@"]
    bad = [f"{code}: {msg}" for code, msg in journal.errors
           if any(n in msg for n in needles)]
    c.add("client errors do not reveal the database", len(journal.errors),
          sorted(set(bad)))
    tally = {}
    for code, _ in journal.errors:
        tally[code] = tally.get(code, 0) + 1
    c.add("errors clients saw (information)", len(journal.errors), [],
          info=json.dumps(tally, sort_keys=True) if tally else "none")
