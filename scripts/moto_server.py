"""moto's server, with DynamoDB requests taken one at a time.

moto copies every table a TransactWriteItems touches (to roll back) without a
lock, so a write to one of those tables on another server thread breaks the
copy: "dictionary changed size during iteration", answered as a bare 500.
Real DynamoDB has no such failure. DynamoDB requests are therefore served
under one lock; KMS requests are not.

Usage: moto_server.py PORT [--keepalive]
  stock: werkzeug, as `moto_server` runs it (one connection per request);
  --keepalive: waitress, which keeps connections open (latency work).
"""

import os
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

port = int(sys.argv[1])
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


if "--keepalive" in sys.argv[2:]:
    import waitress

    waitress.serve(app, host="127.0.0.1", port=port, threads=16, _quiet=True)
else:
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
