"""The client side of a chaos run: lethectl calls and what they answered.

Every submission carries an idempotency key and is retried with the same key
and body while the service is unavailable (the server killed, PostgreSQL
restarting), as docs/integration.md tells product backends to do. The
journal keeps every id each key was answered with and every error message,
so the invariants can compare what clients saw with what the database holds.
"""

import json
import re
import secrets
import subprocess
import threading
import time

RETRYABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED",
             "ABORTED", "INTERNAL", "UNKNOWN"}
# lethectl's error line, "lethectl: CODE: message" (its notes have no CODE).
ERROR_LINE = re.compile(r"^lethectl: ([A-Z_]+): (.*)$")


class Journal:
    def __init__(self):
        self.mu = threading.Lock()
        self.ids = {}          # idempotency key -> set of request ids answered
        self.subject = {}      # idempotency key -> subject id
        self.salt = {}         # idempotency key -> subject salt (hex)
        self.errors = []       # (code, message) of every failed call
        self.unanswered = []   # keys never answered before the deadline
        self.replays = []      # (key, ok, what) of deliberate replays
        self.conflicts = []    # (key, ok, what) of same key, other body

    def answered(self, key, request_id):
        with self.mu:
            self.ids.setdefault(key, set()).add(request_id)

    def error(self, code, message):
        with self.mu:
            self.errors.append((code, message))


class Client:
    def __init__(self, ctl, addr, keys, journal):
        self.ctl = ctl
        self.addr = addr
        self.keys = keys
        self.journal = journal
        # Client-chosen salts (the recommended way, docs/cli.md) when this
        # lethectl has them: a retry must then send the same salt.
        usage = subprocess.run([ctl, "submit", "--help"], capture_output=True,
                               text=True)
        self.client_salts = "--subject-salt" in usage.stdout + usage.stderr

    def call(self, role, *args, timeout=10):
        """(exit status, stdout, error code, error message)."""
        argv = [self.ctl, "--addr", self.addr, "--api-key", self.keys[role],
                "--timeout", str(timeout), *args]
        try:
            r = subprocess.run(argv, capture_output=True, text=True,
                               timeout=timeout + 20)
        except subprocess.TimeoutExpired:
            return 124, "", "DEADLINE_EXCEEDED", "lethectl hung"
        code, message = "", ""
        if r.returncode != 0:
            for line in r.stderr.splitlines():
                m = ERROR_LINE.match(line)
                if m:
                    code, message = m.groups()
            if not code:
                code, message = "UNKNOWN", r.stderr.strip()[-300:]
        return r.returncode, r.stdout, code, message

    def json(self, role, *args, timeout=10):
        rc, out, code, message = self.call(role, *args, "--json",
                                           timeout=timeout)
        if rc != 0:
            raise RuntimeError(f"lethectl {' '.join(args)}: {code}: {message}")
        return json.loads(out.splitlines()[0])

    def submit_once(self, key, subject, reference):
        """(request id or None, replayed, error code, message)."""
        salt = []
        if self.client_salts:
            with self.journal.mu:
                hex_salt = self.journal.salt.setdefault(
                    key, secrets.token_hex(32))
            salt = ["--subject-salt", hex_salt]
        rc, out, code, message = self.call(
            "submitter", "submit", "--subject", subject,
            "--legal-ground", "gdpr-17-1b", "--reference", reference,
            "--idempotency-key", key, *salt, "--json")
        if rc == 0:
            d = json.loads(out.splitlines()[0])
            return d["erasure"]["id"], bool(d.get("replayed", False)), "", ""
        self.journal.error(code, message)
        return None, False, code, message

    def submit(self, key, subject, reference, deadline):
        """Submits until answered or `deadline` (time.monotonic()); retries
        retryable errors with capped exponential backoff."""
        with self.journal.mu:
            self.journal.subject[key] = subject
        delay = 0.2
        while time.monotonic() < deadline:
            rid, replayed, code, message = self.submit_once(
                key, subject, reference)
            if rid is not None:
                self.journal.answered(key, rid)
                return rid, replayed
            if code not in RETRYABLE:
                break
            time.sleep(delay)
            delay = min(delay * 2, 3)
        with self.journal.mu:
            self.journal.unanswered.append(key)
        return None, False

    def replay(self, key, subject, reference, deadline):
        """The same key and body again: the same id, marked replayed."""
        ids = set(self.journal.ids.get(key, set()))
        rid, replayed = self.submit(key, subject, reference, deadline)
        ok = rid is not None and replayed and ids == {rid}
        with self.journal.mu:
            self.journal.replays.append(
                (key, ok, f"id {rid} replayed={replayed}, earlier {sorted(ids)}"))

    def conflict(self, key, subject, deadline):
        """The same key with another body: ALREADY_EXISTS."""
        while time.monotonic() < deadline:
            rid, _, code, message = self.submit_once(key, subject,
                                                     "chaos-other-body")
            if code in RETRYABLE:
                time.sleep(0.5)
                continue
            ok = code == "ALREADY_EXISTS"
            with self.journal.mu:
                self.journal.conflicts.append(
                    (key, ok, f"{code or 'OK'} {message or rid}"))
            return
        with self.journal.mu:
            self.journal.conflicts.append((key, False, "never answered"))
