"""moto's server, with DynamoDB requests taken one at a time.

moto copies every table a TransactWriteItems touches (to roll back) without a
lock, so a write to one of those tables on another server thread breaks the
copy: "dictionary changed size during iteration", answered as a bare 500.
Real DynamoDB has no such failure. DynamoDB requests are therefore served
under one lock; KMS requests are not.

moto's TransactWriteItems also copies a table once per item it holds on
that table (all copies taken before any write, so all alike); a transaction
of an item and its four replicas copied the replicas table four times. The
copies are made once per table per transaction here (`copy_each_table_once`),
the same rollback state at a fraction of the time and memory.

moto keeps every model object it ever made (for its dashboard, which the
tests never use): every item and every table copy, so its memory grew by
gigabytes over a long test (the fault test's transactions). Tracking is off
here (`forget_instances`).

Usage: moto_server.py PORT [--keepalive] [--capacity] [--host ADDR]
  stock: werkzeug, as `moto_server` runs it (one connection per request);
  --keepalive: waitress, which keeps connections open (latency work);
  --capacity: the capacity model (scripts/capacity.py) accounts every
  DynamoDB request's units and every KMS call, served at /__capacity;
  --host ADDR: listen there instead of 127.0.0.1 (scripts/sam-local: the
  Docker bridge's address, so that the functions' containers reach it).
"""

import os
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

def copy_each_table_once():
    """Within one TransactWriteItems, `copy.deepcopy` of a table it has
    copied already answers that copy (moto takes them all before writing)."""
    import copy
    import types

    import moto.dynamodb.models as models

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        copies = {}

        def deepcopy(obj, memo=None):
            if not isinstance(obj, models.Table):
                return copy.deepcopy(obj, memo)
            if id(obj) not in copies:
                copies[id(obj)] = copy.deepcopy(obj, memo)
            return copies[id(obj)]

        # Safe: DynamoDB requests are served one at a time (the lock below).
        models.copy = types.SimpleNamespace(deepcopy=deepcopy)
        try:
            return original(self, transact_items)
        finally:
            models.copy = copy

    models.DynamoDBBackend.transact_write_items = transact_write_items


def forget_instances():
    """moto's `BaseModel.__new__` appends every instance to a class list that
    is never emptied; it is made without that."""
    from moto.core.common_models import BaseModel

    BaseModel.__new__ = staticmethod(lambda cls, *args, **kwargs: object.__new__(cls))


copy_each_table_once()
forget_instances()
port = int(sys.argv[1])
host = sys.argv[sys.argv.index("--host") + 1] if "--host" in sys.argv[2:] else "127.0.0.1"
os.environ.setdefault("MOTO_PORT", str(port))
moto = DomainDispatcherApplication(create_backend_app)
moto.debug = True
dynamodb = threading.Lock()


def app(environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        with dynamodb:
            # The whole body is produced inside the lock.
            return [b"".join(moto(environ, start_response))]
    return moto(environ, start_response)


def capacity_app(environ, start_response):
    """`app`, with each request accounted by the capacity model."""
    import io
    import json

    import capacity

    if environ.get("PATH_INFO") == "/__capacity":
        if environ["REQUEST_METHOD"] == "POST":
            capacity.reset()
        body = capacity.report()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target.startswith("TrentService."):
        capacity.book_kms(target.split(".", 1)[1])
        return moto(environ, start_response)
    if not target.startswith("DynamoDB_"):
        return moto(environ, start_response)
    op = target.split(".", 1)[1]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(raw)
    body = json.loads(raw or b"{}")
    status = {}

    def capture(s, headers, exc_info=None):
        status["code"] = int(s.split(" ", 1)[0])
        return start_response(s, headers, exc_info) if exc_info else start_response(s, headers)

    with dynamodb:
        try:
            before = capacity.before_dynamodb(op, body)
        except Exception:
            before = {}
        out = b"".join(moto(environ, capture))
        try:
            response = json.loads(out or b"{}")
        except ValueError:
            response = {}
        try:
            capacity.after_dynamodb(op, body, response, before, status.get("code", 200))
        except Exception:  # the model never breaks a request
            import traceback

            traceback.print_exc()
    return [out]


if "--capacity" in sys.argv[2:]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    app = capacity_app  # noqa: F811


if "--keepalive" in sys.argv[2:]:
    import waitress

    waitress.serve(app, host=host, port=port, threads=16, _quiet=True)
else:
    from werkzeug.serving import run_simple

    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)
