#!/usr/bin/env python3
"""Cold start and memory of the real Lambda function binaries.

Runs a function binary (built natively) against a minimal Lambda Runtime API
emulator and a keep-alive moto, through a TCP proxy that adds a fixed delay D
to every new connection and to every request (the same rule as
tests/src/delay.rs), and measures:

* init: process spawn -> its first GET /runtime/invocation/next;
* first request: event handed out -> response posted;
* cold total: spawn -> first response;
* one warm request on the same process (event 2);
* memory: VmRSS / VmHWM of one process over N warm invocations (no proxy).

Stdlib only, except boto3 (for CreateKey on moto), which `bench/lambda-bench`
provides by running this file with target/moto-venv/bin/python.

Usage: see bench/lambda-bench, or `python3 bench/lambda_bench.py --help`.
Also `python3 bench/lambda_bench.py proxy --upstream H:P --delay-ms D`
(the delay proxy alone, one line per connection and request on stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import itertools
import json
import os
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TOKEN_PLACEHOLDER = "ibyok_EXAMPLEtokenEXAMPLEtokenEXAMPLEt000000"
KEY_PLACEHOLDER = "key_EXAMPLEtenantEXAMPLEkeyEXAMPLEke"
TOKEN_ID_PLACEHOLDER = "tok_EXAMPLEtokenEXAMPLEtok"
TENANT_PLACEHOLDER = "ten_EXAMPLEtenant"
# The event each function is measured with, and whether it is given the KMS key.
EVENTS = {
    "retrieve": ("retrieve.read-value.json", True),
    "submit": ("submit.create-key.json", True),
    "account": ("account.get-modes.json", False),
    "keys": ("keys.get-key.json", False),
    "token-issue": ("token-issue.create-token.json", False),
    "identities": ("identities.list-identities.json", False),
    # Each invocation revokes a token of its own (a pool issued at setup, no children).
    "revoke": ("revoke.revoke-token.json", False),
    # An exchange naming an identity that does not exist: 401 after one read
    # (the function accepts no loopback issuer: see scripts/bench-auth).
    "auth": ("auth.exchange-oidc.json", False),
    "cleanup": ("cleanup.scheduled.json", False),
    # One key.read record of the bench's key, under a fresh eventID each time.
    "usage": ("usage.audit-stream.json", False),
}
# What each function answers its event with (HTTP functions: the status).
WANT_STATUS = {"retrieve": 200, "submit": 201, "account": 200, "keys": 200, "token-issue": 201, "identities": 200,
               "revoke": 204, "auth": 401}
STORED_VALUE = "sk-lambda-bench-0123456789abcdefghijklmnop"


def now_ns() -> int:
    # CLOCK_MONOTONIC: comparable across processes (the proxy's timestamps).
    return time.monotonic_ns()


def ms(ns: float) -> float:
    return round(ns / 1e6, 3)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def log(msg: str) -> None:
    print(f"[lambda-bench] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ delay proxy


def _request_target(data: bytes) -> str:
    m = re.search(rb"(?im)^x-amz-target:\s*([^\r\n]+)", data)
    if m:
        return m.group(1).decode(errors="replace").strip()
    return data.split(b"\r\n", 1)[0].decode(errors="replace")[:80]


async def _proxy_serve(upstream: str, delay_s: float, emit) -> None:
    host, port = upstream.rsplit(":", 1)
    ids = itertools.count(1)

    async def handle(creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        cid = next(ids)
        emit(f"conn {cid} {now_ns()}")
        csock = cwriter.get_extra_info("socket")
        if csock is not None:
            csock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if delay_s:
            await asyncio.sleep(delay_s)
        try:
            sreader, swriter = await asyncio.open_connection(host, int(port))
        except OSError:
            cwriter.close()
            return
        ssock = swriter.get_extra_info("socket")
        if ssock is not None:
            ssock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Set when a response has flowed back: the next client bytes start a
        # new request and are held for the delay.
        new_request = [True]

        async def up() -> None:
            try:
                while True:
                    data = await creader.read(65536)
                    if not data:
                        break
                    if new_request[0]:
                        new_request[0] = False
                        emit(f"req {cid} {now_ns()} {_request_target(data)}")
                        if delay_s:
                            await asyncio.sleep(delay_s)
                    swriter.write(data)
                    await swriter.drain()
            except (ConnectionError, OSError):
                pass
            try:
                swriter.write_eof()
            except (ConnectionError, OSError, RuntimeError):
                pass

        async def down() -> None:
            try:
                while True:
                    data = await sreader.read(65536)
                    if not data:
                        break
                    if not new_request[0]:
                        emit(f"resp {cid} {now_ns()}")
                    new_request[0] = True
                    cwriter.write(data)
                    await cwriter.drain()
            except (ConnectionError, OSError):
                pass
            cwriter.close()

        await asyncio.gather(up(), down())
        swriter.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    emit(f"ready {server.sockets[0].getsockname()[1]}")
    async with server:
        await server.serve_forever()


def proxy_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="lambda_bench.py proxy")
    p.add_argument("--upstream", required=True, help="host:port of moto")
    p.add_argument("--delay-ms", type=float, default=20.0)
    a = p.parse_args(argv)

    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        asyncio.run(_proxy_serve(a.upstream, a.delay_ms / 1000.0, emit))
    except KeyboardInterrupt:
        pass


class Proxy:
    """The delay proxy in its own process (so that it does not share a GIL
    with the emulator whose timestamps we take)."""

    def __init__(self, upstream_url: str, delay_ms: float):
        upstream = upstream_url.replace("http://", "").rstrip("/")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "proxy", "--upstream", upstream, "--delay-ms", str(delay_ms)],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError("delay proxy failed to start")
        self.url = f"http://127.0.0.1:{line[1]}"
        self.events: list[tuple[str, int, int, str]] = []  # (kind, conn, t_ns, target)
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            parts = line.rstrip("\n").split(" ", 3)
            if len(parts) >= 3:
                with self.lock:
                    self.events.append((parts[0], int(parts[1]), int(parts[2]), parts[3] if len(parts) > 3 else ""))

    def between(self, t0: int, t1: int) -> list[tuple[str, int, int, str]]:
        time.sleep(0.01)  # let the reader catch up
        with self.lock:
            return [e for e in self.events if t0 <= e[2] <= t1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ------------------------------------------------------- Lambda Runtime API emulator


class Runtime:
    """A minimal Lambda Runtime API. Events are queued with `offer`; every
    GET /next hands out the next one (or waits); `on_response` is called in
    the handler thread for every posted response."""

    def __init__(self, function_name: str, trace_ids: str = "unique"):
        self.function_name = function_name
        self.trace_ids = trace_ids  # unique (as Lambda), constant or none
        self.events: "queue.Queue[tuple[str, bytes] | None]" = queue.Queue()
        self.lock = threading.Lock()
        self.first_next: int | None = None
        self.handed_out: dict[str, int] = {}
        self.responses: dict[str, tuple[int, bytes]] = {}
        self.errors: list[tuple[str, bytes]] = []
        self.on_response = None  # fn(request_id, t_ns, body)
        self.closing = False
        self.generation = 0
        runtime = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out as two writes: without TCP_NODELAY,
                # Nagle holds the body for the function's delayed ACK (40 ms)
                # on a kept-alive connection.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length", "0") or 0)
                return self.rfile.read(n) if n else b""

            def _send(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self) -> None:
                t = now_ns()
                if self.path != "/2018-06-01/runtime/invocation/next":
                    self._send(404)
                    return
                with runtime.lock:
                    if runtime.first_next is None:
                        runtime.first_next = t
                    # This generation's queue: a poll left over from a killed
                    # process must not take the next run's event.
                    events, generation = runtime.events, runtime.generation
                while True:
                    try:
                        item = events.get(timeout=0.5)
                    except queue.Empty:
                        if runtime.closing or runtime.generation != generation:
                            self.close_connection = True
                            return
                        continue
                    break
                if item is None:
                    self.close_connection = True
                    return
                rid, event = item
                deadline = int(time.time() * 1000) + 30_000
                headers = {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": rid,
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn": f"arn:aws:lambda:us-east-1:123456789012:function:{runtime.function_name}",
                }
                if runtime.trace_ids == "unique":  # as Lambda does, X-Ray or not
                    headers["Lambda-Runtime-Trace-Id"] = (
                        f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"
                    )
                elif runtime.trace_ids == "constant":
                    headers["Lambda-Runtime-Trace-Id"] = "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0"
                with runtime.lock:
                    runtime.handed_out[rid] = now_ns()
                self._send(200, event, headers)

            def do_POST(self) -> None:
                body = self._body()
                t = now_ns()
                m = re.fullmatch(r"/2018-06-01/runtime/invocation/([^/]+)/(response|error)", self.path)
                if m and m.group(2) == "response":
                    with runtime.lock:
                        runtime.responses[m.group(1)] = (t, body)
                    self._send(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
                    cb = runtime.on_response
                    if cb:
                        cb(m.group(1), t, body)
                    return
                if m or self.path == "/2018-06-01/runtime/init/error":
                    with runtime.lock:
                        runtime.errors.append((self.path, body))
                    self._send(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
                    cb = runtime.on_response
                    if cb:
                        cb(m.group(1) if m else "init", t, None)
                    return
                self._send(404)

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # a killed function's connection resets: expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.first_next = None
            self.handed_out.clear()
            self.responses.clear()
            self.errors.clear()
            self.events = queue.Queue()
            self.generation += 1

    def offer(self, rid: str, event: bytes) -> None:
        self.events.put((rid, event))


# ------------------------------------------------------------------ setup


def run(cmd: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def http_json(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def setup(moto: str, cli: str, revoke_pool: int = 0) -> dict:
    """Tables, a tenant and its root token, a KMS key and one stored value
    (and `revoke_pool` tokens issued by the root token, for `revoke`)."""
    prefix = f"lbench-{os.getpid()}-{int(time.time())}-"
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=moto,
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        IBYOK_TOKENS_TABLE=f"{prefix}tokens",
        IBYOK_KEYS_TABLE=f"{prefix}keys",
        IBYOK_TENANTS_TABLE=f"{prefix}tenants",
        IBYOK_AUDIT_TABLE=f"{prefix}audit",
        IBYOK_CHILDREN_TABLE=f"{prefix}children",
        IBYOK_USAGE_TABLE=f"{prefix}usage",
        IBYOK_LIMITS_TABLE=f"{prefix}limits",
        IBYOK_REPLICAS_TABLE=f"{prefix}replicas",
        IBYOK_IDENTITIES_TABLE=f"{prefix}identities",
        IBYOK_DIGESTS_TABLE=f"{prefix}digests",
        AWS_LAMBDA_LOG_LEVEL="warn",
    )
    env.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    env.pop("AWS_PROFILE", None)
    log(f"creating tables {prefix}* on {moto}")
    run([cli, "admin", "create-tables"], env)
    boot = json.loads(run([cli, "--json", "admin", "bootstrap", "--tenant", "bench"], env).stdout)
    try:
        import boto3  # noqa: PLC0415 (only here: the rest is stdlib)

        kms = boto3.client(
            "kms",
            endpoint_url=moto,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        kms_key = kms.create_key(Description="ibyok lambda bench")["KeyMetadata"]["KeyId"]
    except ImportError:
        sys.exit("boto3 is missing: run with target/moto-venv/bin/python (bench/lambda-bench does)")
    env["IBYOK_KMS_KEY_ID"] = kms_key
    port = free_port()
    log(f"storing a value through `ibyok dev --aws --listen 127.0.0.1:{port}`")
    dev = subprocess.Popen(
        [cli, "dev", "--aws", "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        listening = False
        while time.time() < deadline and not listening:
            line = dev.stderr.readline()
            if not line:
                break
            listening = line.startswith("Listening on")
        if not listening:
            raise RuntimeError("ibyok dev did not start")
        base = f"http://127.0.0.1:{port}"
        code, key = http_json(
            "POST", f"{base}/keys", boot["token"], {"name": "bench", "llmType": "openai", "value": STORED_VALUE}
        )
        if code != 201:
            raise RuntimeError(f"POST /keys: {code} {key}")
        code, read = http_json("GET", f"{base}/external/keys/{key['keyId']}/value?env=production", boot["token"])
        if code != 200 or read.get("value") != STORED_VALUE or read["modeInfo"]["effectiveMode"] != "live":
            raise RuntimeError(f"read back: {code} {read}")
        pool = []
        for i in range(revoke_pool):
            code, tok = http_json(
                "POST", f"{base}/tokens", boot["token"], {"name": f"revoke-{i}", "scopes": ["keys:read"], "expiresIn": 86400}
            )
            if code != 201:
                raise RuntimeError(f"POST /tokens: {code} {tok}")
            pool.append(tok["tokenId"])
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(10)
        except subprocess.TimeoutExpired:
            dev.kill()
    return {
        "env": {k: env[k] for k in env if k.startswith("IBYOK_") and k.endswith(("_TABLE", "_KMS_KEY_ID"))},
        "token": boot["token"],
        "token_id": boot["tokenId"],
        "tenant_id": boot["tenantId"],
        "key_id": key["keyId"],
        "kms_key": kms_key,
        "revoke_pool": pool,
    }


def event_bytes(function: str, s: dict) -> bytes:
    text = open(os.path.join(ROOT, "events", EVENTS[function][0])).read()
    text = text.replace(TOKEN_PLACEHOLDER, s["token"]).replace(KEY_PLACEHOLDER, s["key_id"])
    if function != "revoke":  # revoke's target is set per invocation (fresh_event)
        text = text.replace(TOKEN_ID_PLACEHOLDER, s["token_id"])
    return text.replace(TENANT_PLACEHOLDER, s["tenant_id"]).encode()


def fresh_event(function: str, s: dict, event: bytes) -> bytes:
    """The event for one invocation: revoke takes the next token of the pool
    (a revoked token cannot be revoked again); usage a fresh eventID (the
    batch id a delivery is counted under once)."""
    if function == "revoke":
        if not s["revoke_pool"]:
            raise RuntimeError("revoke: the pool of tokens to revoke is used up")
        return event.replace(TOKEN_ID_PLACEHOLDER.encode(), s["revoke_pool"].pop().encode())
    if function == "usage":
        return re.sub(rb'"eventID": "[^"]*"', f'"eventID": "{uuid.uuid4().hex}"'.encode(), event)
    return event


def function_env(function: str, runtime: Runtime, endpoint: str, s: dict) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]bench",
        "AWS_LAMBDA_LOG_LEVEL": "warn",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
        "AWS_ENDPOINT_URL": endpoint,
        "LAMBDA_TASK_ROOT": "/var/task",
        "TZ": ":UTC",
    }
    for k, v in s["env"].items():
        if k == "IBYOK_KMS_KEY_ID" and not EVENTS[function][1]:
            continue
        env[k] = v
    return env


def expected(function: str, body: bytes | None) -> str | None:
    """None if the response is the one we expect, else why not."""
    if body is None:
        return "the function posted an error"
    try:
        r = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:200]!r}"
    if function == "cleanup":
        return None if isinstance(r, dict) and "maintenance" in r else f"unexpected body {body[:300]!r}"
    if function == "usage":
        return None if isinstance(r, dict) and r.get("reads") == 1 else f"unexpected body {body[:300]!r}"
    want = WANT_STATUS[function]
    if r.get("statusCode") != want:
        return f"status {r.get('statusCode')}: {str(r.get('body'))[:300]}"
    if function == "auth" and json.loads(r["body"])["error"]["code"] != "unauthorized":
        return f"unexpected body {r['body'][:300]}"
    if function == "retrieve":
        b = json.loads(r["body"])
        if b.get("value") != STORED_VALUE or b["modeInfo"]["effectiveMode"] != "live":
            return f"unexpected body {r['body'][:300]}"
    return None


def read_status(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "VmData", "Threads"):
                out[k] = int(v.split()[0])  # kB (Threads: a count)
    return out


# ------------------------------------------------------------------ measurements


def spawn(binary: str, env: dict, logfile) -> subprocess.Popen:
    return subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile, cwd="/")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def cold_once(binary: str, function: str, runtime: Runtime, env: dict, event, proxy: Proxy | None, logfile) -> dict:
    """`event`: a function returning the event of one invocation."""
    runtime.reset()
    done = threading.Event()
    got: dict = {}

    def on_response(rid: str, t: int, body: bytes | None) -> None:
        got[rid] = (t, body)
        if rid == "cold":
            runtime.offer("warm", event())  # one warm invocation on the same process
        if rid != "cold":
            done.set()

    runtime.on_response = on_response
    runtime.offer("cold", event())
    t0 = now_ns()
    proc = spawn(binary, env, logfile)
    deadline = time.time() + 60
    while not (ok := done.wait(0.2)) and time.time() < deadline and proc.poll() is None:
        pass
    rss = read_status(proc.pid) if proc.poll() is None else {}
    stop(proc)
    runtime.on_response = None
    if not ok:
        raise RuntimeError(
            f"{function}: no response (exit status {proc.returncode}, errors {runtime.errors}; see target/lambda-bench/{function}.log)"
        )
    for rid in ("cold", "warm"):
        why = expected(function, got[rid][1])
        if why:
            raise RuntimeError(f"{function} {rid}: {why}")
    t_next = runtime.first_next
    t_cold_out = runtime.handed_out["cold"]
    t_cold_resp = got["cold"][0]
    t_warm_out = runtime.handed_out["warm"]
    t_warm_resp = got["warm"][0]
    r = {
        "init_ms": ms(t_next - t0),
        "first_request_ms": ms(t_cold_resp - t_cold_out),
        "cold_total_ms": ms(t_cold_resp - t0),
        "warm_request_ms": ms(t_warm_resp - t_warm_out),
        "rss_kb_after_2": rss.get("VmRSS"),
    }
    if proxy is not None:
        evs = proxy.between(t0, t_warm_resp)
        r["connections_before_first_next"] = sum(1 for e in evs if e[0] == "conn" and e[2] < t_next)
        cold_evs = [e for e in evs if e[2] <= t_cold_resp]
        if cold_evs:
            # The function's own time on the first request: from the event to
            # its first backend connection, and from the last backend response
            # to its posted response.
            r["cold_event_to_first_backend_ms"] = ms(cold_evs[0][2] - t_cold_out)
            last_resp = max((e[2] for e in cold_evs if e[0] == "resp"), default=t_cold_resp)
            r["cold_last_backend_to_response_ms"] = ms(t_cold_resp - last_resp)
        r["connections_cold"] = sum(1 for e in evs if e[0] == "conn" and e[2] <= t_cold_resp)
        r["connections_warm"] = sum(1 for e in evs if e[0] == "conn" and t_warm_out <= e[2] <= t_warm_resp)
        # The first request's backend timeline, relative to the event being handed out.
        r["cold_timeline"] = [
            f"+{ms(e[2] - t_cold_out):.1f}ms {e[0]} c{e[1]}{(' ' + e[3]) if e[3] else ''}"
            for e in evs
            if t0 <= e[2] <= t_cold_resp
        ]
        r["warm_timeline"] = [
            f"+{ms(e[2] - t_warm_out):.1f}ms {e[0]} c{e[1]}{(' ' + e[3]) if e[3] else ''}"
            for e in evs
            if t_warm_out <= e[2] <= t_warm_resp
        ]
    return r


def summarize(runs: list[dict], key: str) -> dict:
    xs = sorted(r[key] for r in runs)
    return {"median": round(statistics.median(xs), 3), "min": xs[0], "max": xs[-1]}


# Where rustls-native-certs looks for roots (read at init, when the SDK
# clients are built). Debian's default is the bundle *and* the 292-entry
# /etc/ssl/certs directory; Lambda's provided.al2023 has one bundle and a
# near-empty directory, which `bundle` approximates; `none` takes the cost out.
CERT_VARIANTS = {
    "default": {},
    "bundle": {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"},
    "none": {"SSL_CERT_FILE": "EMPTY"},
}


def cold_series(binary, function, runtime, s, moto, delay_ms, runs, logfile, extra_env=None) -> dict:
    proxy = Proxy(moto, delay_ms)
    try:
        env = function_env(function, runtime, proxy.url, s)
        env.update(extra_env or {})
        raw = event_bytes(function, s)

        def event() -> bytes:
            return fresh_event(function, s, raw)

        results, failures = [], []
        for i in range(runs):
            try:
                results.append(cold_once(binary, function, runtime, env, event, proxy, logfile))
            except RuntimeError as e:  # e.g. moto answering 500: recorded, not fatal
                log(f"  run {i + 1} failed: {e}")
                failures.append(str(e))
            time.sleep(0.05)
    finally:
        proxy.stop()
    if not results:
        raise RuntimeError(f"{function}: every cold start failed: {failures}")
    out = {"delay_ms": delay_ms, "runs": results, "failed_runs": failures}
    for k in ("init_ms", "first_request_ms", "cold_total_ms", "warm_request_ms"):
        out[k] = summarize(results, k)
    if delay_ms:
        out["first_request_in_D"] = round(out["first_request_ms"]["median"] / delay_ms, 2)
        out["cold_total_in_D"] = round(out["cold_total_ms"]["median"] / delay_ms, 2)
        out["warm_request_in_D"] = round(out["warm_request_ms"]["median"] / delay_ms, 2)
    for k in ("cold_event_to_first_backend_ms", "cold_last_backend_to_response_ms"):
        if all(k in r for r in results):
            out[k] = summarize(results, k)
    out["connections_cold"] = statistics.median(r["connections_cold"] for r in results)
    out["connections_before_first_next"] = max(r["connections_before_first_next"] for r in results)
    return out


def trim_audit(endpoint: str, table: str, tenant: str) -> None:
    """Deletes the audit events written so far. moto copies every table a
    TransactWriteItems touches (for its rollback), so with thousands of
    events each planned read costs moto hundreds of milliseconds; DynamoDB
    has no such cost, and the memory run measures the function, not moto."""
    import boto3  # noqa: PLC0415

    db = boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    # The tenant's audit partitions: 32 shards and the earlier layout's bare id.
    partitions = [f"{tenant}#{i:02}" for i in range(32)] + [tenant]
    keys = [
        item
        for partition in partitions
        for page in db.get_paginator("query").paginate(
            TableName=table,
            KeyConditionExpression="tenantId = :t",
            ExpressionAttributeValues={":t": {"S": partition}},
            ProjectionExpression="tenantId, eventKey",
        )
        for item in page["Items"]
    ]
    for i in range(0, len(keys), 25):
        db.batch_write_item(RequestItems={table: [{"DeleteRequest": {"Key": k}} for k in keys[i : i + 25]]})


def memory_series(binary, function, runtime, s, endpoint, n, logfile) -> dict:
    """One process, n warm invocations straight to moto (D = 0); the audit
    table is emptied every 500 invocations (see trim_audit)."""
    runtime.reset()
    env = function_env(function, runtime, endpoint, s)
    event = event_bytes(function, s)
    samples: dict[int, dict] = {}
    marks = {1, 10, 100, 1000, n} | set(range(1000, n + 1, 1000))
    done = threading.Event()
    failures: list[str] = []
    count = [0]
    latencies: list[int] = []
    proc_box: list[subprocess.Popen] = []

    def on_response(rid: str, t: int, body: bytes | None) -> None:
        i = int(rid.split("-")[1])
        count[0] = i
        latencies.append(t - runtime.handed_out.get(rid, t))
        if i in marks:
            samples[i] = read_status(proc_box[0].pid)
        if i == 1 or i % 997 == 0:  # spot-check the responses
            why = expected(function, body)
            if why:
                failures.append(f"invocation {i}: {why}")
                done.set()
                return
        if i >= n:
            done.set()
        else:
            if i % 500 == 0:
                trim_audit(endpoint, s["env"]["IBYOK_AUDIT_TABLE"], s["tenant_id"])
            runtime.offer(f"inv-{i + 1}", fresh_event(function, s, event))

    runtime.on_response = on_response
    runtime.offer("inv-1", fresh_event(function, s, event))
    t0 = time.time()
    proc_box.append(spawn(binary, env, logfile))
    last = 0
    while not done.wait(15):
        if proc_box[0].poll() is not None:
            failures.append(f"the function exited with {proc_box[0].returncode}")
            break
        log(f"  memory: {count[0]}/{n} invocations, {time.time() - t0:.0f} s")
        if count[0] == last:
            failures.append(f"stalled at {count[0]}")
            break
        last = count[0]
    elapsed = time.time() - t0
    stop(proc_box[0])
    runtime.on_response = None
    if failures:
        raise RuntimeError(f"{function} memory run: {failures}")
    lat = sorted(latencies)
    s1000, sn = samples[1000], samples[n]
    return {
        "invocations": n,
        "elapsed_s": round(elapsed, 1),
        "samples_kb": {str(k): v for k, v in sorted(samples.items())},
        "peak_rss_kb": max(v["VmHWM"] for v in samples.values()),
        "peak_rss_mb": round(max(v["VmHWM"] for v in samples.values()) / 1024, 2),
        "rss_growth_1000_to_n_kb": sn["VmRSS"] - s1000["VmRSS"],
        "hwm_growth_1000_to_n_kb": sn["VmHWM"] - s1000["VmHWM"],
        "anon_growth_1000_to_n_kb": sn["RssAnon"] - s1000["RssAnon"],
        "warm_latency_ms": {
            "median": ms(statistics.median(lat)),
            "p90": ms(lat[int(len(lat) * 0.9)]),
            "p99": ms(lat[int(len(lat) * 0.99)]),
        },
    }


# ------------------------------------------------------------------ main


def table(results: dict) -> str:
    lines = []
    for fn, r in results["functions"].items():
        lines.append(f"\n{fn}  ({r['binary']}, {r['binary_bytes'] / 1e6:.1f} MB)")
        lines.append(
            f"  {'D (ms)':>6}  {'init':>8}  {'1st req':>8}  {'cold tot':>9}  {'warm req':>8}  "
            f"{'1st/D':>6}  {'cold/D':>6}  {'warm/D':>6}  {'conns':>5}  {'ev->1st be':>10}  {'be->resp':>8}  "
            f"{'(X(D)-X(0))/D: 1st cold warm':>28}   (medians of {r['cold_runs']}, ms)"
        )
        for c in r["cold"]:
            lines.append(
                f"  {c['delay_ms']:>6g}  {c['init_ms']['median']:>8.2f}  {c['first_request_ms']['median']:>8.2f}  "
                f"{c['cold_total_ms']['median']:>9.2f}  {c['warm_request_ms']['median']:>8.2f}  "
                f"{c.get('first_request_in_D', float('nan')):>6.2f}  {c.get('cold_total_in_D', float('nan')):>6.2f}  "
                f"{c.get('warm_request_in_D', float('nan')):>6.2f}  {c['connections_cold']:>5g}  "
                f"{c.get('cold_event_to_first_backend_ms', {}).get('median', float('nan')):>10.2f}  "
                f"{c.get('cold_last_backend_to_response_ms', {}).get('median', float('nan')):>8.2f}  "
                + (
                    "{first_request_ms:>9.2f} {cold_total_ms:>5.2f} {warm_request_ms:>5.2f}".format(**c["added_over_D0_in_D"])
                    if "added_over_D0_in_D" in c
                    else ""
                )
            )
        for name, v in r.get("cert_variants", {}).items():
            lines.append(
                f"  roots from {name:<8} (D = 0): init {v['init_ms']['median']:.2f} ms, first request "
                f"{v['first_request_ms']['median']:.2f} ms, cold total {v['cold_total_ms']['median']:.2f} ms  {v['env'] or ''}"
            )
        m = r.get("memory")
        if m:
            lines.append(
                f"  memory over {m['invocations']} warm invocations ({m['elapsed_s']} s, warm p50 {m['warm_latency_ms']['median']} ms): "
                f"peak VmHWM {m['peak_rss_mb']} MB; VmRSS at 1 / 1000 / {m['invocations']}: "
                f"{m['samples_kb']['1']['VmRSS']} / {m['samples_kb']['1000']['VmRSS']} / {m['samples_kb'][str(m['invocations'])]['VmRSS']} kB "
                f"(growth 1000->{m['invocations']}: {m['rss_growth_1000_to_n_kb']:+d} kB RSS, {m['anon_growth_1000_to_n_kb']:+d} kB anon)"
            )
    if results.get("targets"):
        lines.append("\ntargets (retrieve):")
        for t in results["targets"]:
            lines.append(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['measured']}")
    return "\n".join(lines)


def targets(r: dict) -> list[dict]:
    out = []
    colds = {c["delay_ms"]: c for c in r["cold"]}
    inits = [c["init_ms"]["median"] for c in r["cold"]]
    before = max(c["connections_before_first_next"] for c in r["cold"])
    # Init opens connections (the warm-up) but must not wait on them: its
    # time may not grow with D.
    d_max = max(colds)
    grows = colds[d_max]["init_ms"]["median"] - colds[min(colds)]["init_ms"]["median"]
    out.append(
        {
            "target": "init <= 15 ms before any backend connection is waited on",
            "met": max(inits) <= 15 and (d_max == 0 or grows < d_max / 2),
            "measured": f"init median {min(inits):.2f}-{max(inits):.2f} ms across D (D = {d_max:g} adds {grows:+.2f} ms: "
            f"nothing waited on); connections opened, not awaited, before the first /next: {before}",
        }
    )
    for d, c in sorted(colds.items()):
        if d:
            out.append(
                {
                    "target": f"cold live read, init included, <= 3.3 x D (D = {d:g} ms: <= {3.3 * d:.0f} ms)",
                    "met": c["cold_total_ms"]["median"] <= 3.3 * d,
                    "measured": f"{c['cold_total_ms']['median']:.1f} ms = {c['cold_total_in_D']} x D "
                    f"(init {c['init_ms']['median']:.1f} + first request {c['first_request_ms']['median']:.1f} = {c['first_request_in_D']} x D; warm {c['warm_request_in_D']} x D)"
                    + (
                        f"; with moto's D = 0 time taken out: cold {c['added_over_D0_in_D']['cold_total_ms']} x D, warm {c['added_over_D0_in_D']['warm_request_ms']} x D"
                        if "added_over_D0_in_D" in c
                        else ""
                    ),
                }
            )
    m = r.get("memory")
    if m:
        out.append(
            {
                "target": f"peak RSS <= 24 MB over {m['invocations']} warm invocations",
                "met": m["peak_rss_kb"] <= 24 * 1024,
                "measured": f"peak VmHWM {m['peak_rss_kb']} kB = {m['peak_rss_mb']} MB",
            }
        )
        out.append(
            {
                "target": f"no RSS growth between the 1,000th and the {m['invocations']:,}th invocation",
                "met": m["rss_growth_1000_to_n_kb"] <= 0,
                "measured": f"VmRSS {m['samples_kb']['1000']['VmRSS']} -> {m['samples_kb'][str(m['invocations'])]['VmRSS']} kB ({m['rss_growth_1000_to_n_kb']:+d} kB; RssAnon {m['anon_growth_1000_to_n_kb']:+d} kB)",
            }
        )
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "proxy":
        proxy_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--moto", default=os.environ.get("IBYOK_TEST_AWS_ENDPOINT"), help="moto endpoint (keep-alive)")
    p.add_argument("--cli", default=os.path.join(ROOT, "target/debug/ibyok"))
    p.add_argument("--bin-dir", required=True, help="directory holding the function binaries")
    p.add_argument("--profile", default="?", help="recorded in the JSON")
    p.add_argument("--functions", default="retrieve")
    p.add_argument("--delays", default="0,20,40", help="D values in ms (cold starts)")
    p.add_argument("--cold-runs", type=int, default=10)
    p.add_argument("--memory-invocations", type=int, default=10_000, help="0 skips the memory run")
    p.add_argument("--memory-functions", default="retrieve")
    p.add_argument(
        "--trace-ids",
        choices=("unique", "constant", "none"),
        default="unique",
        help="Lambda-Runtime-Trace-Id per invocation: unique (as Lambda sends it), one constant value, or no header",
    )
    p.add_argument("--cert-variants", action="store_true", help="also time init with other root-certificate sources (D = 0)")
    p.add_argument("--out", default=os.path.join(ROOT, "target/bench/lambda.json"))
    a = p.parse_args()
    if not a.moto:
        sys.exit("no moto endpoint: pass --moto or source scripts/moto.sh")

    names = [f.strip() for f in a.functions.split(",") if f.strip()]
    # The memory runs' functions last: a memory run leaves thousands of
    # stream records on moto's audit table, which moto copies on every
    # transaction touching it (a later function's cold starts would time out).
    names.sort(key=lambda f: f in a.memory_functions.split(",") and a.memory_invocations > 0)
    delays = [float(d) for d in a.delays.split(",") if d.strip()]
    # Two invocations a cold start (cold, warm), and a margin for the
    # memory run if it is asked of revoke.
    pool = 0
    if "revoke" in names:
        pool = 2 * a.cold_runs * len(delays) * (2 if a.cert_variants else 1) + 4
        if "revoke" in a.memory_functions.split(","):
            pool += a.memory_invocations
    s = setup(a.moto, a.cli, pool)
    log(f"tenant {s['tenant_id']}, key {s['key_id']}, KMS key {s['kms_key']}")
    os.makedirs(os.path.join(ROOT, "target/lambda-bench"), exist_ok=True)
    results: dict = {
        "profile": a.profile,
        "host": {"cpus": os.cpu_count(), "loadavg": os.getloadavg(), "machine": os.uname().machine},
        "method": {
            "init": "process spawn -> first GET /runtime/invocation/next",
            "first_request": "cold event handed out -> response posted",
            "cold_total": "spawn -> first response posted",
            "warm_request": "second event on the same process",
            "proxy": "adds D to every new connection and to every request (tests/src/delay.rs rule)",
            "memory": "one process, warm invocations straight to moto; /proc/<pid>/status",
        },
        "setup": {k: s[k] for k in ("tenant_id", "key_id", "kms_key")},
        "trace_ids": a.trace_ids,
        "functions": {},
    }
    for fn in names:
        binary = os.path.abspath(os.path.join(a.bin_dir, fn))
        runtime = Runtime(fn, a.trace_ids)
        r = {"binary": binary, "binary_bytes": os.path.getsize(binary), "cold_runs": a.cold_runs, "cold": []}
        with open(os.path.join(ROOT, f"target/lambda-bench/{fn}.log"), "wb") as logfile:
            for d in delays:
                log(f"{fn}: {a.cold_runs} cold starts at D = {d:g} ms")
                c = cold_series(binary, fn, runtime, s, a.moto, d, a.cold_runs, logfile)
                log(
                    f"  init {c['init_ms']['median']:.2f} ms, first request {c['first_request_ms']['median']:.2f} ms, "
                    f"cold total {c['cold_total_ms']['median']:.2f} ms, warm {c['warm_request_ms']['median']:.2f} ms"
                )
                r["cold"].append(c)
            base = next((c for c in r["cold"] if c["delay_ms"] == 0), None)
            for c in r["cold"]:
                if base is not None and c["delay_ms"]:
                    # The part that grows with D, in D: moto's own service time
                    # (in the D = 0 figures) taken out.
                    c["added_over_D0_in_D"] = {
                        k: round((c[k]["median"] - base[k]["median"]) / c["delay_ms"], 2)
                        for k in ("first_request_ms", "cold_total_ms", "warm_request_ms")
                    }
            if a.cert_variants:
                empty = os.path.join(ROOT, "target/lambda-bench/empty.pem")
                open(empty, "w").close()
                r["cert_variants"] = {}
                for name, extra in CERT_VARIANTS.items():
                    extra = {k: (empty if v == "EMPTY" else v) for k, v in extra.items()}
                    log(f"{fn}: {a.cold_runs} cold starts at D = 0 with root certificates from {name} {extra}")
                    c = cold_series(binary, fn, runtime, s, a.moto, 0.0, a.cold_runs, logfile, extra)
                    r["cert_variants"][name] = {
                        "env": extra,
                        "init_ms": c["init_ms"],
                        "first_request_ms": c["first_request_ms"],
                        "cold_total_ms": c["cold_total_ms"],
                    }
                    log(f"  init {c['init_ms']['median']:.2f} ms, first request {c['first_request_ms']['median']:.2f} ms")
            if a.memory_invocations and fn in a.memory_functions.split(","):
                log(f"{fn}: {a.memory_invocations} warm invocations for memory")
                r["memory"] = memory_series(binary, fn, runtime, s, a.moto, a.memory_invocations, logfile)
        runtime.closing = True
        runtime.server.shutdown()
        if fn == "retrieve":
            results["targets"] = targets(r)
        results["functions"][fn] = r
        results["host"]["loadavg_end"] = os.getloadavg()
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w") as f:  # after each function: a later failure keeps the earlier results
            json.dump(results, f, indent=2)
    print(table(results))
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
