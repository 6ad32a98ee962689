#!/usr/bin/env python3
"""lethe under faults: one server, two workers and a real PostgreSQL, with
erasure requests fanning out to two models while workers are SIGKILLed at
random, the server is killed twice and PostgreSQL restarts once on its port.
Then every request must end COMPLETED and the invariants of docs/chaos.md
must hold; it prints the invariant table and exits 1 on any violation.

  tests/chaos/run.py                 short form (~2 minutes, 60 requests)
  tests/chaos/run.py --long          long form (~10-15 minutes, 300 requests)
  tests/chaos/run.py --build-dir DIR --seed N --keep

Binaries come from --build-dir (default $LETHE_BUILD_DIR, else build/),
read only. Python 3's standard library, lethectl, psql and pg_dump only.
"""

import argparse
import concurrent.futures
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import invariants  # noqa: E402
from client import Client, Journal  # noqa: E402
from cluster import Cluster  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

PROFILES = {
    # window: seconds of faults; submissions spread over its first 80%.
    # budget: the whole run; the drain is cut short to stay within it (the
    # short form runs under ctest's TIMEOUT of 600 s).
    # subjects: how many own train records; each request erases another.
    "short": dict(subjects=200, requests=60, window=60, worker_kill=(4, 10),
                  drain=240, replays=10, verify=10, dup=0.15, conflict=0.1,
                  budget=540),
    "long": dict(subjects=400, requests=300, window=480, worker_kill=(5, 20),
                 drain=420, replays=40, verify=40, dup=0.1, conflict=0.05,
                 budget=1500),
}


class Dataset:
    """S subjects with exactly K train records each; test records belong to
    separate holdout subjects. 16 float features, 3 classes."""

    def __init__(self, rng, subjects=200, k=10, holdout=50, k_test=10,
                 features=16, classes=3):
        self.train_subjects = [f"chaos-subject-{i:04d}" for i in range(subjects)]
        self.holdout_subjects = [f"chaos-holdout-{i:04d}" for i in range(holdout)]
        self.k, self.k_test = k, k_test
        self.features, self.classes = features, classes
        self.centers = [[rng.gauss(0, 1) for _ in range(features)]
                        for _ in range(classes)]
        self.rng = rng

    def write_csv(self, path):
        with open(path, "w") as f:
            f.write("subject_id,label,split," +
                    ",".join(f"f{i}" for i in range(self.features)) + "\n")
            for subjects, n, split in ((self.train_subjects, self.k, "train"),
                                       (self.holdout_subjects, self.k_test,
                                        "test")):
                for s in subjects:
                    for _ in range(n):
                        y = self.rng.randrange(self.classes)
                        x = [c + self.rng.gauss(0, 1.2) for c in self.centers[y]]
                        f.write(f"{s},{y},{split}," +
                                ",".join(f"{v:.4f}" for v in x) + "\n")


class Run:
    def __init__(self, args, work):
        self.args = args
        self.p = PROFILES["long" if args.long else "short"]
        self.rng = random.Random(args.seed)
        self.work = work
        self.t0 = time.monotonic()
        self.cluster = Cluster(ROOT, args.build_dir, work, workers=2,
                               log=self.say)
        self.journal = Journal()
        self.data = Dataset(random.Random(args.seed + 1),
                            subjects=self.p["subjects"])
        self.faults = {"worker kills": 0, "server kills": 0,
                       "postgres restarts": 0}
        self.pg_ports = []  # (before, after) each stop and start

    def say(self, msg):
        print(f"[{time.monotonic() - self.t0:7.1f}s] {msg}", flush=True)

    # --- setup ------------------------------------------------------------

    def setup(self):
        c = self.cluster
        self.say(f"PostgreSQL under {c.pg_dir}")
        c.start_postgres()
        keys = c.setup()
        c.start_lethe()
        self.client = Client(c.ctl, f"127.0.0.1:{c.server_port}", keys,
                             self.journal)
        self.say(f"server on 127.0.0.1:{c.server_port}, database port "
                 f"{c.pg_port}, {c.n_workers} workers")
        self.wait(lambda: self.client.call("admin", "health")[0] == 0, 30,
                  "the server is not SERVING")
        d = self.data
        csv = os.path.join(self.work, "chaos.csv")
        d.write_csv(csv)
        ds = self.client.json("admin", "dataset", "create", "--name", "chaos",
                              "--shape", str(d.features), "--type", "float32",
                              "--classes", str(d.classes))["id"]
        self.client.json("admin", "dataset", "upload", ds, "--csv", csv,
                         timeout=120)
        policy = os.path.join(self.work, "policy.json")
        with open(policy, "w") as f:
            f.write('{"methods": ["UNLEARNING_METHOD_FINETUNE", '
                    '"UNLEARNING_METHOD_RETRAIN"], "batchWindowSeconds": 1, '
                    '"batchSize": 16, "maxCostFraction": 100}\n')
        # About 1 s per engine run on one core, so that kills land in runs.
        common = ["--dataset", ds, "--epochs", "30", "--batch-size", "16",
                  "--seed", "1", "--policy-json", policy]
        self.models = [
            self.client.json("admin", "model", "register", "--name",
                             "chaos-logreg", "--kind", "logreg", "--optimizer",
                             "sgd", "--lr", "0.1", "--momentum", "0.9",
                             *common)["id"],
            self.client.json("admin", "model", "register", "--name",
                             "chaos-mlp", "--kind", "mlp", "--hidden", "32",
                             "--optimizer", "adam", "--lr", "0.01",
                             *common)["id"],
        ]
        self.say(f"dataset {ds}: {len(d.train_subjects)} subjects x {d.k} "
                 f"train records, {len(d.holdout_subjects)} holdout x "
                 f"{d.k_test} test; models {', '.join(self.models)}")
        for m in self.models:
            def ready(m=m):
                st = self.client.json("admin", "model", "get", m)["state"]
                if st == "MODEL_STATE_INVALID":
                    raise RuntimeError(f"model {m} is INVALID")
                return st == "MODEL_STATE_READY"
            self.wait(ready, 120, f"model {m} not READY")
        self.say("both models READY")

    def wait(self, cond, seconds, what):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.cluster.supervise()
            if cond():
                return
            time.sleep(0.5)
        raise RuntimeError(f"{what} after {seconds} s")

    # --- the fault window -------------------------------------------------

    def submissions(self, pool, start, deadline):
        n = self.p["requests"]
        subjects = self.rng.sample(self.data.train_subjects, n)
        span = self.p["window"] * 0.8
        futures = []
        self.keys = []
        for i, subject in enumerate(subjects):
            key = f"chaos-{self.args.seed}-{i:04d}"
            self.keys.append((key, subject))
            at = start + i * span / n
            copies = 2 if self.rng.random() < self.p["dup"] else 1
            conflict = self.rng.random() < self.p["conflict"]
            for _ in range(copies):
                futures.append(pool.submit(self.submit_job, at, key, subject,
                                           conflict, deadline))
                conflict = False
        return futures

    def submit_job(self, at, key, subject, conflict, deadline):
        time.sleep(max(0, at - time.monotonic()))
        rid, _ = self.client.submit(key, subject, "chaos", deadline)
        if rid and conflict:
            self.client.conflict(key, subject, deadline)

    def fault_window(self):
        p, c = self.p, self.cluster
        start = time.monotonic()
        end = start + p["window"]
        # The second server kill falls in the PostgreSQL outage, with a
        # worker's: both must start and wait for the database, not exit.
        events = [(start + p["window"] * 0.25, "server"),
                  (start + p["window"] * 0.5, "outage")]
        if self.args.long:
            events.append((start + p["window"] * 0.75, "restart"))
        next_worker = start + self.rng.uniform(*p["worker_kill"])
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=6)
        futures = self.submissions(pool, start, end + 120)
        self.say(f"fault window of {p['window']} s: {p['requests']} requests, "
                 "workers killed at random, server killed twice, PostgreSQL "
                 "down once" + (" and restarted once" if self.args.long else ""))
        while time.monotonic() < end:
            now = time.monotonic()
            c.supervise()
            if events and now >= events[0][0]:
                what = events.pop(0)[1]
                if what == "server":
                    self.say("SIGKILL server")
                    c.crash(c.server, self.rng.uniform(0.5, 2))
                    self.faults["server kills"] += 1
                elif what == "outage":
                    self.outage()
                else:
                    self.say("restarting PostgreSQL (pg-local.sh restart)")
                    port = c.pg_port
                    c.restart_postgres()
                    self.faults["postgres restarts"] += 1
                    self.pg_ports.append((port, c.pg_port))
                    self.say(f"PostgreSQL back on port {c.pg_port}")
            if now >= next_worker:
                w = self.rng.choice([w for w in c.workers if w.running()]
                                    or c.workers)
                if w.running():
                    self.say(f"SIGKILL {w.name}")
                    c.crash(w, self.rng.uniform(0.5, 3))
                    self.faults["worker kills"] += 1
                next_worker = now + self.rng.uniform(*p["worker_kill"])
            time.sleep(0.1)
        # Everything up again, then the last submissions finish.
        self.wait(lambda: all(x.running() for x in c.procs()), 30,
                  "processes not running again")
        self.say("faults over; waiting for the submissions")
        while not all(f.done() for f in futures):
            c.supervise()
            time.sleep(0.2)
        pool.shutdown()
        for f in futures:
            f.result()  # a bug in the driver itself surfaces here

    def outage(self):
        """PostgreSQL stopped for 3 s; the server and a worker are killed
        and started again while it is down; then it starts on its port."""
        c = self.cluster
        self.say("stopping PostgreSQL; SIGKILL server and a worker, "
                 "started again during the outage")
        c.stop_postgres()
        w = self.rng.choice(c.workers)
        for proc in (c.server, w):
            if proc.running():
                c.crash(proc, 0.2)
        self.faults["server kills"] += 1
        self.faults["worker kills"] += 1
        until = time.monotonic() + 3
        while time.monotonic() < until:
            c.supervise()
            time.sleep(0.1)
        port = c.pg_port
        c.start_postgres()
        self.faults["postgres restarts"] += 1
        self.pg_ports.append((port, c.pg_port))
        self.say(f"PostgreSQL back on port {c.pg_port}")

    # --- after the faults -------------------------------------------------

    def replays(self):
        deadline = time.monotonic() + 60
        for key, subject in self.rng.sample(self.keys, self.p["replays"]):
            self.client.replay(key, subject, "chaos", deadline)
            if key in self.journal.ids:
                self.client.conflict(key, subject, deadline)

    def drain(self):
        db = invariants.Db(self.cluster.db_url)
        self.say("waiting until every request is terminal and certified")

        def done():
            left, uncertified = db.rows(
                "SELECT count(*) FILTER (WHERE state IN ('QUEUED', 'RUNNING')), "
                "count(*) FILTER (WHERE state = 'COMPLETED' AND NOT EXISTS "
                "(SELECT 1 FROM certificates c WHERE c.request_id = r.id)) "
                "FROM erasure_requests r")[0]
            return left == "0" and uncertified == "0"
        budget_left = self.p["budget"] - (time.monotonic() - self.t0) - 30
        try:
            self.wait(done, max(10, min(self.p["drain"], budget_left)),
                      "requests still open")
            self.say("all requests terminal")
        except RuntimeError as e:
            self.say(f"{e}; checking what is there")

    def verify_certificates(self):
        db = invariants.Db(self.cluster.db_url)
        ids = [r[0] for r in db.rows(
            "SELECT request_id FROM certificates WHERE supersedes IS NULL")]
        results = []
        for rid in self.rng.sample(ids, min(len(ids), self.p["verify"])):
            bundle = os.path.join(self.work, f"{rid}.bundle.json")
            rc, _, code, msg = self.client.call(
                "admin", "certificate", "get", rid, "--bundle", bundle)
            if rc != 0:
                results.append((rid, False, f"certificate get: {code} {msg}"))
                continue
            r = subprocess.run([self.cluster.ctl, "verify", bundle, "--key",
                                self.cluster.signing + ".pub"],
                               capture_output=True, text=True)
            results.append((rid, r.returncode == 0,
                            (r.stdout.splitlines() or [""])[0]))
        return results

    def check(self, verified):
        c = invariants.Checks()
        db = invariants.Db(self.cluster.db_url)
        dump = os.path.join(self.work, "dump.sql")
        subprocess.run([f"{invariants.PG_BIN}/pg_dump", "-f", dump,
                        self.cluster.db_url], check=True)
        invariants.check_requests(c, db, self.journal)
        invariants.check_states(c, db, self.models)
        invariants.check_certificates(c, db, verified)
        completed = {k for k, s in db.rows(
            "SELECT idempotency_key, state FROM erasure_requests")
            if s == "COMPLETED"}
        erased = {self.journal.subject[k] for k in completed
                  if k in self.journal.subject}
        invariants.check_records(c, db, self.data, self.cluster.secret, erased)
        invariants.check_training_sets(c, db, self.data)
        invariants.check_raw_ids(c, self.cluster.log_files(), dump,
                                 ["chaos-subject-", "chaos-holdout-"])
        invariants.check_attempts(c, db)
        invariants.check_versions(c, db)
        starts = sum(p.starts for p in self.cluster.procs())
        invariants.check_processes(c, self.cluster.unexpected_exits, starts)
        invariants.check_error_messages(c, self.journal, self.cluster.pg_port)
        c.add("PostgreSQL kept its port across stop and start",
              len(self.pg_ports),
              [f"port {a} became {b}" for a, b in self.pg_ports if a != b])
        return c

    def run(self):
        self.setup()
        self.fault_window()
        self.replays()
        self.drain()
        verified = self.verify_certificates()
        for p in self.cluster.procs():
            p.stop()
        checks = self.check(verified)
        versions = invariants.Db(self.cluster.db_url).value(
            "SELECT count(*) FROM model_versions")
        print()
        print(f"chaos ({'long' if self.args.long else 'short'}, seed "
              f"{self.args.seed}): {len(self.keys)} requests, {versions} "
              f"model versions, " + ", ".join(
                  f"{v} {k}" for k, v in self.faults.items()) +
              f", {time.monotonic() - self.t0:.0f} s")
        checks.print()
        failed = checks.failed()
        print(f"chaos: {'FAIL' if failed else 'PASS'}: {failed} invariants "
              "violated" if failed else "chaos: PASS: every invariant holds")
        return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--long", action="store_true",
                    help="300 requests over 8 minutes of faults")
    ap.add_argument("--build-dir", default=os.environ.get(
        "LETHE_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--keep", action="store_true",
                    help="keep the run's folder (logs, dump, bundles)")
    args = ap.parse_args()
    for b in ("server/lethe", "worker/lethe-worker", "lethectl/lethectl"):
        if not os.access(os.path.join(args.build_dir, b), os.X_OK):
            sys.exit(f"chaos: no {b} in {args.build_dir}; build it or pass "
                     "--build-dir")
    work = tempfile.mkdtemp(prefix="lethe-chaos.")
    os.chmod(work, 0o755)  # as root, PostgreSQL runs as `postgres`
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    run = Run(args, work)
    run.say(f"seed {args.seed}, folder {work}, binaries {args.build_dir}")
    status = 1
    try:
        status = run.run()
    finally:
        run.cluster.stop_all()
        if status != 0:
            for path in run.cluster.log_files():
                print(f"--- {path} (last 15 lines)")
                with open(path, errors="replace") as f:
                    print("".join(f.readlines()[-15:]), end="")
        if args.keep:
            print(f"chaos: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    threading.excepthook = lambda a: print(f"chaos: thread failed: {a}")
    sys.exit(main())
