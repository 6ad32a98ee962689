"""The processes of a chaos run and the faults done to them.

A PostgreSQL cluster under the run's folder (scripts/pg-local.sh, durable),
one `lethe serve` on a fixed port and several `lethe-worker`s. Each lethe
process runs in a process group of its own, so a SIGKILL takes all of it.
`Cluster.supervise()` plays the orchestrator: a process that exited without
being killed by the driver is recorded (an unexpected exit) and started
again after a second, as Kubernetes or systemd would.
"""

import os
import signal
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """One lethe process that can be started, SIGKILLed and started again."""

    def __init__(self, name, argv, log_path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.popen = None
        self.killed = False  # by the driver; an exit is then expected
        self.restart_at = None
        self.starts = 0

    def start(self):
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        self.killed = False
        self.restart_at = None
        self.starts += 1

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def kill(self):
        """SIGKILL to the whole process group: a crash."""
        self.killed = True
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()

    def stop(self, grace=10):
        """SIGTERM, then SIGKILL after `grace` seconds."""
        self.killed = True
        if not self.running():
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill()


class Cluster:
    def __init__(self, root, build, work, workers, log):
        self.root = root
        self.build = build
        self.work = work
        self.say = log
        self.pg_dir = os.path.join(work, "pg")
        self.pg_local = os.path.join(root, "scripts", "pg-local.sh")
        self.lethe = os.path.join(build, "server", "lethe")
        self.worker_bin = os.path.join(build, "worker", "lethe-worker")
        self.ctl = os.path.join(build, "lethectl", "lethectl")
        self.secret = os.path.join(work, "secret")
        self.signing = os.path.join(work, "signing")
        self.n_workers = workers
        self.db_url = None
        self.pg_port = None
        self.server = None
        self.workers = []
        self.unexpected_exits = []  # (name, exit status, seconds since start)
        self.t0 = time.monotonic()

    # --- PostgreSQL -------------------------------------------------------

    def _pg(self, *args):
        subprocess.run([self.pg_local, args[0], self.pg_dir, *args[1:]],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def start_postgres(self):
        self._pg("start", "--durable")
        self._read_url()

    def restart_postgres(self):
        """Stop (fast) and start on the same port; clients keep the URL."""
        self._pg("restart")
        self._read_url()

    def _read_url(self):
        self.db_url = subprocess.run(
            [self.pg_local, "url", self.pg_dir], check=True,
            capture_output=True, text=True).stdout.strip()
        self.pg_port = int(self.db_url.rsplit(":", 1)[1].split("/")[0])

    def stop_postgres(self):
        subprocess.run([self.pg_local, "stop", self.pg_dir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # --- lethe ------------------------------------------------------------

    def admin(self, *args):
        return subprocess.run([self.lethe, *args], check=True,
                              capture_output=True, text=True).stdout.strip()

    def setup(self):
        """Schema, the subject-key secret, a signing key, two API keys."""
        self.admin("migrate", "--database-url", self.db_url)
        self.admin("admin", "create-secret", "--secrets-file", self.secret)
        self.admin("admin", "create-signing-key", "--out", self.signing,
                   "--name", "lethe-chaos")
        keys = {}
        for role in ("admin", "submitter"):
            keys[role] = self.admin("admin", "create-key", "--role", role,
                                    "--description", "chaos",
                                    "--database-url", self.db_url)
        return keys

    def start_lethe(self):
        self.server_port = free_port()
        self.server = Proc("server", [
            self.lethe, "serve", "--insecure-plaintext",
            "--database-url", self.db_url,
            "--secrets-file", self.secret,
            "--public-keys", self.signing + ".pub",
            "--listen", f"127.0.0.1:{self.server_port}",
            "--shutdown-grace-seconds", "1"],
            os.path.join(self.work, "server.log"))
        self.server.start()
        for i in range(self.n_workers):
            w = Proc(f"worker-{i}", [
                self.worker_bin, "--database-url", self.db_url,
                "--device", "cpu", "--threads", "1",
                "--signing-keys", self.signing + ".key",
                "--lease-seconds", "3", "--poll-seconds", "1",
                "--retry-base-seconds", "1", "--retry-max-seconds", "4"],
                os.path.join(self.work, f"worker-{i}.log"))
            w.start()
            self.workers.append(w)

    def procs(self):
        return [p for p in [self.server, *self.workers] if p is not None]

    def supervise(self):
        """Starts again what the driver killed (when due) or what exited."""
        now = time.monotonic()
        for p in self.procs():
            if p.running():
                continue
            if p.killed:
                if p.restart_at is not None and now >= p.restart_at:
                    p.start()
                continue
            if p.restart_at is None:
                self.unexpected_exits.append(
                    (p.name, p.popen.returncode, round(now - self.t0, 1)))
                self.say(f"{p.name} exited on its own "
                         f"(status {p.popen.returncode}); restarting in 1 s")
                p.restart_at = now + 1
            elif now >= p.restart_at:
                p.start()

    def crash(self, proc, restart_after):
        proc.kill()
        proc.restart_at = time.monotonic() + restart_after

    def stop_all(self):
        for p in self.procs():
            p.stop()
        self.stop_postgres()

    def log_files(self):
        files = [p.log_path for p in self.procs()]
        files.append(os.path.join(self.pg_dir, "postgres.log"))
        return [f for f in files if os.path.exists(f)]
