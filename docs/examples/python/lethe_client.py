#!/usr/bin/env python3
"""A product backend's use of lethe's ErasureService, with grpcio.

It submits an erasure request for one data subject with a salt it drew
itself (so that it can open the request's subject commitment whatever
happens to the response), checks that the commitment opens, retries the
submission with the same idempotency key and salt (the server answers with
the same request, `replayed` set), shows that reusing the key for a
different request, or with another salt, is refused (ALREADY_EXISTS),
optionally cancels the request, watches it until a
terminal state (reconnecting when the stream breaks), reads it back, pages
through ListErasures, fetches the completion certificate of a COMPLETED
request, and shows how each kind of error is told apart. docs/integration.md
explains every step.

Requirements: Python 3.9+, grpcio and grpcio-tools (Debian: python3-grpcio
python3-grpc-tools). The stubs are generated from proto/lethe/v1 at start
into a temporary folder; to generate them once instead, run

    python3 -m grpc_tools.protoc -I proto --python_out=OUT --grpc_python_out=OUT \
        proto/lethe/v1/erasure.proto proto/lethe/v1/certificate.proto

and pass --stubs-dir OUT.

Usage:

    lethe_client.py --addr HOST:PORT --subject ID [--api-key KEY]
        [--legal-ground NAME] [--reference TEXT] [--model ID]...
        [--idempotency-key KEY] [--subject-salt HEX] [--cancel] [--tls-ca FILE]
        [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]
        [--timeout SECONDS] [--watch-timeout SECONDS] [--page-size N]

The API key comes from --api-key or $LETHE_API_KEY (a `submitter` key is
enough for everything but listing, which needs `operator`, `auditor` or
`admin`).

Exit status: 0 when the request ended COMPLETED or NOTHING_TO_ERASE (or
CANCELLED after --cancel); 1 when it ended FAILED, CANCELLED without
--cancel, or the server broke a promise this example checks; 2 for a usage
error; 3 when a call failed (the gRPC code is printed).
"""

import argparse
import hashlib
import importlib
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "..", "proto"))
PROTOS = ["lethe/v1/erasure.proto", "lethe/v1/certificate.proto"]

# What a client should do with each status code (docs/integration.md,
# "Errors"). Every ErasureService call is safe to repeat: SubmitErasure
# because of its idempotency key, CancelErasure because cancelling a
# CANCELLED request returns it unchanged, the others because they only read.
RETRY_WITH_BACKOFF = {
    grpc.StatusCode.UNAVAILABLE,         # PostgreSQL or the server unreachable
    grpc.StatusCode.RESOURCE_EXHAUSTED,  # server out of database connections
    grpc.StatusCode.ABORTED,             # transaction conflict
    grpc.StatusCode.DEADLINE_EXCEEDED,   # outcome unknown: repeat the same call
}
# WatchErasure: reconnect on these (and when the stream ends early).
WATCH_RECONNECT = RETRY_WITH_BACKOFF | {grpc.StatusCode.CANCELLED}


def load_stubs(proto_dir, stubs_dir):
    """Imports the generated modules, generating them first if needed."""
    tmp = None
    if stubs_dir is None:
        from grpc_tools import protoc

        tmp = tempfile.mkdtemp(prefix="lethe-stubs-")
        # grpc_tools ships google/protobuf/*.proto (timestamp.proto).
        well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
        args = ["grpc_tools.protoc", "-I" + proto_dir, "-I" + well_known,
                "--python_out=" + tmp, "--grpc_python_out=" + tmp]
        args += [os.path.join(proto_dir, p) for p in PROTOS]
        if protoc.main(args) != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SystemExit("lethe_client: protoc failed on " + proto_dir)
        stubs_dir = tmp
    sys.path.insert(0, stubs_dir)
    try:
        mods = {name: importlib.import_module("lethe.v1." + name) for name in
                ("erasure_pb2", "erasure_pb2_grpc", "certificate_pb2",
                 "certificate_pb2_grpc")}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)  # modules are loaded
    return mods


class CallFailed(Exception):
    """A call failed for good; carries the grpc.RpcError."""

    def __init__(self, what, err):
        super().__init__("%s: %s: %s" % (what, err.code().name, err.details()))
        self.err = err


def call(what, method, request, metadata, timeout, attempts=5):
    """Calls a unary method with a deadline, retrying with exponential
    backoff and jitter on the codes that mean "try again"."""
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            return method(request, metadata=metadata, timeout=timeout)
        except grpc.RpcError as err:
            if err.code() not in RETRY_WITH_BACKOFF or attempt == attempts:
                raise CallFailed(what, err) from None
            pause = min(delay, 10.0) * random.uniform(0.5, 1.0)
            print("%s: %s, retrying in %.1fs" % (what, err.code().name, pause))
            time.sleep(pause)
            delay *= 2


class Client:
    def __init__(self, args, pb):
        self.pb = pb
        self.e = pb["erasure_pb2"]
        self.timeout = args.timeout
        self.metadata = [("authorization", "Bearer " + args.api_key)]
        # gRPC reconnects a broken channel with exponential backoff (up to
        # 120 s by default); cap it so that a restarted replica is found in
        # seconds.
        options = [("grpc.max_reconnect_backoff_ms", 5000)]
        if args.tls_ca or args.tls_cert:
            def read(path):
                with open(path, "rb") as f:
                    return f.read()
            creds = grpc.ssl_channel_credentials(
                root_certificates=read(args.tls_ca) if args.tls_ca else None,
                private_key=read(args.tls_key) if args.tls_key else None,
                certificate_chain=read(args.tls_cert) if args.tls_cert else None)
            if args.tls_server_name:
                options.append(("grpc.ssl_target_name_override",
                                args.tls_server_name))
            self.channel = grpc.secure_channel(args.addr, creds, options)
        else:
            self.channel = grpc.insecure_channel(args.addr, options)
        self.erasures = pb["erasure_pb2_grpc"].ErasureServiceStub(self.channel)
        self.certificates = pb["certificate_pb2_grpc"].CertificateServiceStub(
            self.channel)

    def state(self, erasure):
        return self.e.ErasureState.Name(erasure.state).replace(
            "ERASURE_STATE_", "")

    def terminal(self, erasure):
        return erasure.state in (self.e.ERASURE_STATE_COMPLETED,
                                 self.e.ERASURE_STATE_NOTHING_TO_ERASE,
                                 self.e.ERASURE_STATE_FAILED,
                                 self.e.ERASURE_STATE_CANCELLED)

    def submit(self, request):
        return call("submit", self.erasures.SubmitErasure, request,
                    self.metadata, self.timeout)

    def get(self, request_id):
        return call("get", self.erasures.GetErasure,
                    self.e.GetErasureRequest(id=request_id), self.metadata,
                    self.timeout)

    def cancel(self, request_id):
        return call("cancel", self.erasures.CancelErasure,
                    self.e.CancelErasureRequest(id=request_id), self.metadata,
                    self.timeout)

    def watch(self, request_id, on_event, timeout):
        """Streams the request's states until a terminal one. The first
        message of every stream is the current state, so reconnecting never
        misses the end; states already seen are not reported twice."""
        deadline = time.monotonic() + timeout
        last, delay = None, 0.2
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no terminal state within %ss" % timeout)
            try:
                # wait_for_ready: while the channel reconnects (a replica
                # restarting), wait for it instead of failing at once.
                stream = self.erasures.WatchErasure(
                    self.e.WatchErasureRequest(id=request_id),
                    metadata=self.metadata, timeout=remaining,
                    wait_for_ready=True)
                for event in stream:
                    delay = 0.2
                    if event.erasure != last:
                        on_event(event.erasure)
                        last = event.erasure
                    if self.terminal(event.erasure):
                        return event.erasure
                print("watch: stream ended before a terminal state; reconnecting")
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and \
                        time.monotonic() >= deadline:
                    raise TimeoutError("no terminal state within %ss" % timeout)
                if err.code() not in WATCH_RECONNECT:
                    raise CallFailed("watch", err) from None
                print("watch: %s; reconnecting (%s)" % (err.code().name,
                                                       err.details()))
                sys.stdout.flush()
            time.sleep(min(delay, 10.0) * random.uniform(0.5, 1.0))
            delay *= 2

    def list_all(self, page_size):
        """Pages through ListErasures; returns (requests, pages)."""
        count, pages, token = 0, 0, ""
        while True:
            page = call("list", self.erasures.ListErasures,
                        self.e.ListErasuresRequest(page_size=page_size,
                                                   page_token=token),
                        self.metadata, self.timeout)
            count += len(page.erasures)
            pages += 1
            token = page.next_page_token
            if not token:  # an empty token marks the last page
                return count, pages

    def certificate(self, request_id):
        c = self.pb["certificate_pb2"]
        return call("certificate", self.certificates.GetCertificate,
                    c.GetCertificateRequest(request_id=request_id),
                    self.metadata, self.timeout)


def describe(client, erasure):
    line = "%s" % client.state(erasure)
    if erasure.state_reason:
        line += " (%s)" % erasure.state_reason
    return line


def check_commitment(erasure, salt, subject):
    """What an auditor will do: recompute the commitment from the salt and
    the subject id (docs/compliance.md)."""
    opened = hashlib.sha256(b"lethe-subject/v1" + salt +
                            subject.encode("utf-8")).digest()
    if opened == erasure.subject_commitment:
        print("commitment: opens with the salt")
        return True
    print("commitment: does not open with the salt")
    return False


def expect_error(client, what, fn, expected):
    """Runs fn, which must fail with `expected`; prints what to do."""
    try:
        fn()
    except CallFailed as failed:
        code = failed.err.code()
        advice = "retry with backoff" if code in RETRY_WITH_BACKOFF else \
            "do not retry"
        print("errors: %s -> %s (%s)" % (what, code.name, advice))
        return code == expected
    print("errors: %s -> OK, expected %s" % (what, expected.name))
    return False


def run(args, pb):
    client = Client(args, pb)
    e = client.e
    ok = True
    ground = getattr(e, "LEGAL_GROUND_" + args.legal_ground)
    # The idempotency key and the salt are drawn before the first call, and a
    # real backend stores them with its ticket first: every retry sends both
    # unchanged, and the salt opens the commitment even if no response ever
    # arrives.
    key = args.idempotency_key or str(uuid.uuid4())
    salt = bytes.fromhex(args.subject_salt) if args.subject_salt else \
        secrets.token_bytes(32)
    request = e.SubmitErasureRequest(
        subject_id=args.subject, model_ids=args.model, legal_ground=ground,
        legal_reference=args.reference, idempotency_key=key,
        subject_salt=salt)

    # 1. Submit. Keep the salt: lethe does not store it, and it is what
    #    opens erasure.subject_commitment for an auditor.
    first = client.submit(request)
    erasure = first.erasure
    print("submit: request %s state %s replayed %s" % (
        erasure.id, client.state(erasure), str(first.replayed).lower()))
    print("submit: idempotency key %s, %d task(s)" % (key, len(erasure.tasks)))
    if first.subject_salt and first.subject_salt != salt:
        # A lethe without client salts ignores ours and returns its own.
        print("salt: the server drew its own; keeping that one")
        salt = first.subject_salt
    print("salt: %s" % salt.hex())
    ok &= check_commitment(erasure, salt, args.subject)

    # 2. A retry (a timeout, a crash before the answer was stored) with the
    #    same key, body and salt returns the same request.
    again = client.submit(request)
    print("retry (same key, same body): request %s replayed %s" % (
        again.erasure.id, str(again.replayed).lower()))
    if again.erasure.id != erasure.id or not again.replayed:
        print("retry: expected the original request back")
        ok = False

    # 3. The same key for a different request is refused, whatever changed,
    #    the salt included.
    other = e.SubmitErasureRequest()
    other.CopyFrom(request)
    other.legal_reference = (request.legal_reference + " (changed)")[:1024]
    other_salt = e.SubmitErasureRequest()
    other_salt.CopyFrom(request)
    other_salt.subject_salt = secrets.token_bytes(32)
    for what, changed in (("other body", other), ("other salt", other_salt)):
        try:
            client.submit(changed)
            print("reuse (same key, %s): accepted, expected ALREADY_EXISTS"
                  % what)
            ok = False
        except CallFailed as failed:
            print("reuse (same key, %s): %s" % (what, failed.err.code().name))
            ok &= failed.err.code() == grpc.StatusCode.ALREADY_EXISTS

    # 4. Watch until a terminal state; with --cancel, cancel while watching.
    def on_event(ev):
        tasks = " ".join("%s=%s" % (t.model_id, e.TaskState.Name(t.state)
                                    .replace("TASK_STATE_", ""))
                         for t in ev.tasks)
        print("watch: %s%s" % (describe(client, ev), " " + tasks if tasks else ""))
        sys.stdout.flush()

    result = {}
    first_event = threading.Event()

    def watcher():
        def seen(ev):
            on_event(ev)
            first_event.set()
        try:
            result["final"] = client.watch(erasure.id, seen, args.watch_timeout)
        except (CallFailed, TimeoutError) as failed:
            result["error"] = failed
        finally:
            first_event.set()

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    if args.cancel:
        first_event.wait(args.timeout)
        try:
            cancelled = client.cancel(erasure.id)
            print("cancel: request %s state %s" % (cancelled.id,
                                                   client.state(cancelled)))
        except CallFailed as failed:
            # FAILED_PRECONDITION: a worker has started, or it is finished.
            print("cancel: %s: %s" % (failed.err.code().name,
                                      failed.err.details()))
            if failed.err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
    thread.join(args.watch_timeout + args.timeout)
    if "error" in result:
        if isinstance(result["error"], CallFailed):
            raise result["error"]
        print("watch: %s" % result["error"])
        return 1
    if "final" not in result:
        print("watch: no terminal state within %ss" % args.watch_timeout)
        return 1

    # 5. Read it back.
    got = client.get(erasure.id)
    print("get: request %s state %s" % (got.id, describe(client, got)))
    for t in got.tasks:
        print("get:   model %s task %s attempts %d version %d%s" % (
            t.model_id, e.TaskState.Name(t.state).replace("TASK_STATE_", ""),
            t.attempts, t.result_version,
            " last error: " + t.last_error if t.last_error else ""))

    # 6. A COMPLETED request has a signed certificate (docs/compliance.md).
    if got.state == e.ERASURE_STATE_COMPLETED:
        try:
            cert = client.certificate(got.id)
            print("certificate: leaf %d key %s models %s envelope %d bytes" % (
                cert.leaf_index, cert.key_id, ",".join(cert.model_ids),
                len(cert.envelope)))
        except CallFailed as failed:
            # NOT_FOUND: not issued yet (no signing key on the workers).
            print("certificate: %s" % failed)

    # 7. Paging (role operator, auditor or admin).
    try:
        count, pages = client.list_all(args.page_size)
        print("list: %d request(s) in %d page(s) of at most %d" % (
            count, pages, args.page_size))
    except CallFailed as failed:
        if failed.err.code() != grpc.StatusCode.PERMISSION_DENIED:
            raise
        print("list: PERMISSION_DENIED (this key's role may not list)")

    # 8. Errors the caller causes are final: fix the call, do not retry.
    ok &= expect_error(client, "GetErasure(unknown id)",
                       lambda: client.get(str(uuid.uuid4())),
                       grpc.StatusCode.NOT_FOUND)
    ok &= expect_error(client, "GetErasure(malformed id)",
                       lambda: client.get("not-a-uuid"),
                       grpc.StatusCode.INVALID_ARGUMENT)
    ok &= expect_error(client, "SubmitErasure(no legal ground)",
                       lambda: client.submit(e.SubmitErasureRequest(
                           subject_id=args.subject,
                           idempotency_key=str(uuid.uuid4()))),
                       grpc.StatusCode.INVALID_ARGUMENT)
    bad = "lethe_%s_%s" % ("0" * 16, "0" * 64)
    ok &= expect_error(client, "unknown API key",
                       lambda: call("get", client.erasures.GetErasure,
                                    e.GetErasureRequest(id=erasure.id),
                                    [("authorization", "Bearer " + bad)],
                                    client.timeout),
                       grpc.StatusCode.UNAUTHENTICATED)

    final = got.state
    print("result: %s" % client.state(got))
    if not ok:
        return 1
    if final in (e.ERASURE_STATE_COMPLETED, e.ERASURE_STATE_NOTHING_TO_ERASE):
        return 0
    if final == e.ERASURE_STATE_CANCELLED and args.cancel:
        return 0
    return 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--addr", default=os.environ.get("LETHE_ADDR",
                                                    "127.0.0.1:50051"))
    p.add_argument("--api-key", default=os.environ.get("LETHE_API_KEY"))
    p.add_argument("--subject", required=True,
                   help="the data subject's id, as in the uploaded records")
    p.add_argument("--legal-ground", default="GDPR_ART17_1B_CONSENT_WITHDRAWN",
                   help="a LegalGround name without the LEGAL_GROUND_ prefix")
    p.add_argument("--reference", default="",
                   help="free text, e.g. the ticket number")
    p.add_argument("--model", action="append", default=[],
                   help="restrict the erasure to this model id (repeatable)")
    p.add_argument("--idempotency-key",
                   help="default: a fresh UUID (store it before calling)")
    p.add_argument("--subject-salt",
                   help="64 hex digits: the salt of an earlier call with the "
                   "same idempotency key; default: 32 fresh random bytes "
                   "(store them before calling)")
    p.add_argument("--cancel", action="store_true",
                   help="cancel the request while watching it")
    p.add_argument("--tls-ca", help="PEM CA certificates to trust (TLS)")
    p.add_argument("--tls-cert", help="PEM client certificate (mTLS)")
    p.add_argument("--tls-key", help="PEM key of --tls-cert")
    p.add_argument("--tls-server-name",
                   help="name to check in the server certificate")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="deadline of each unary call, seconds")
    p.add_argument("--watch-timeout", type=float, default=600.0,
                   help="how long to wait for a terminal state, seconds")
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--proto-dir", default=DEFAULT_PROTO_DIR)
    p.add_argument("--stubs-dir", help="pre-generated stubs (see above)")
    args = p.parse_args()
    if not args.api_key:
        p.error("no API key: pass --api-key or set LETHE_API_KEY")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if args.subject_salt is not None:
        try:
            valid = len(bytes.fromhex(args.subject_salt)) == 32
        except ValueError:
            valid = False
        if not valid:
            p.error("--subject-salt must be 64 hex digits (32 bytes)")
    pb = load_stubs(args.proto_dir, args.stubs_dir)
    if not hasattr(pb["erasure_pb2"], "LEGAL_GROUND_" + args.legal_ground):
        p.error("unknown legal ground " + args.legal_ground)
    try:
        return run(args, pb)
    except CallFailed as failed:
        print("lethe_client: %s" % failed, file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
