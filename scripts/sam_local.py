"""The JSON and YAML work of scripts/sam-local, run with the SAM CLI's venv.

  sam_local.py sam ARGS...
      SAM's CLI, with its wait for a container made exact (see `sam`).

  sam_local.py template BUILT OUT ENDPOINT
      The built template (sam build's output) with AWS_ENDPOINT_URL added to
      the functions' environment, so that `--env-vars` may set it: SAM passes
      a function only the variables its template declares. Nothing else
      changes: the same code, handlers, runtime, architecture and memory.
  sam_local.py functions BUILT
      "binary LogicalId" lines: the function each event file's prefix names.
  sam_local.py env OUT NAME=VALUE...
      The --env-vars file: the same values for every function.
  sam_local.py event SRC OUT [FROM=TO...] [--pending]
      An event with its placeholders replaced by real ids; --pending also
      stages the body's value as a pending version (the promote event needs
      one).
  sam_local.py check NAME STATUS FIELDS OUT LOG
      Asserts an invocation's answer (OUT, sam's stdout): an HTTP function's
      statusCode is STATUS and its JSON body has each of the comma-separated
      FIELDS ("-" for none, "error" for the contract's error object); for
      another function, its result has the FIELDS. Prints one line: the
      status and the REPORT line's init and duration from LOG (sam's stderr),
      and the body's fields.
  sam_local.py get OUT FIELD
      A field of an HTTP answer's JSON body.
  sam_local.py stream ENDPOINT TABLE OUT
      The audit table's stream records, read from moto, as the event the
      usage function's event source mapping would deliver.
"""

import json
import re
import sys


def sam(args):
    """SAM waits until its container's published port accepts a connection,
    then posts the event, and gives up after three tries within 0.7 s. With
    dockerd's userland proxy (which publishes the ports when iptables is
    off), the port accepts at once, before the runtime interface emulator
    inside listens; under qemu the emulator sometimes takes longer than
    0.7 s to start, and SAM then reports a 20 s timeout of a function that
    never ran. Here the port is ready when a connection stays open: the
    proxy closes it at once while nothing listens behind it."""
    import socket

    from samcli.cli.main import cli
    from samcli.local.docker.container import Container

    def ready(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.3)
        try:
            s.connect((self._container_host, self.rapid_port_host))
            return s.recv(1) != b""
        except socket.timeout:
            return True
        except OSError:
            return False
        finally:
            s.close()

    Container._can_connect_to_socket = ready
    sys.argv = ["sam", *args]
    sys.exit(cli())


def template(built, out, endpoint):
    from samcli.yamlhelper import yaml_dump, yaml_parse

    with open(built) as f:
        doc = yaml_parse(f.read())
    variables = doc.setdefault("Globals", {}).setdefault("Function", {}).setdefault("Environment", {}).setdefault("Variables", {})
    variables["AWS_ENDPOINT_URL"] = endpoint
    with open(out, "w") as f:
        f.write(yaml_dump(doc))


def functions(built):
    from samcli.yamlhelper import yaml_parse

    with open(built) as f:
        doc = yaml_parse(f.read())
    for name, res in doc["Resources"].items():
        if res.get("Type") == "AWS::Serverless::Function":
            binary = res.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
            if binary:
                print(binary, name)


def env(out, pairs):
    values = dict(p.split("=", 1) for p in pairs)
    with open(out, "w") as f:
        json.dump({"Parameters": values}, f, indent=2)


def event(src, out, args):
    pending = "--pending" in args
    with open(src) as f:
        text = f.read()
    for pair in args:
        if pair != "--pending":
            old, new = pair.split("=", 1)
            text = text.replace(old, new)
    if pending:
        doc = json.loads(text)
        body = json.loads(doc["body"])
        body["stage"] = "pending"
        doc["body"] = json.dumps(body)
        text = json.dumps(doc, indent=2)
    with open(out, "w") as f:
        f.write(text)


def answer(out):
    """sam local invoke prints the function's result as the last line of stdout."""
    with open(out) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    if not lines:
        raise SystemExit("no answer on stdout")
    return json.loads(lines[-1])


def report(log):
    """Init and duration from the invocation's REPORT line (the emulator's)."""
    with open(log, errors="replace") as f:
        text = f.read()
    m = re.findall(r"REPORT RequestId: \S+\s+(?:Init Duration: ([\d.]+) ms\s+)?Duration: ([\d.]+) ms", text)
    if not m:
        return None, None
    init, duration = m[-1]
    return (float(init) if init else None), float(duration)


def check(name, status, fields, out, log):
    result = answer(out)
    wanted = [] if fields == "-" else fields.split(",")
    if isinstance(result, dict) and "statusCode" in result:
        got = result["statusCode"]
        raw = result.get("body") or ""
        body = json.loads(raw) if raw else {}
        if got != int(status):
            raise SystemExit(f"{name}: expected {status}, got {got}: {raw}")
    else:
        got, body = "ok", result
        if status != "ok":
            raise SystemExit(f"{name}: expected {status}, got a non-HTTP result: {result}")
    for field in wanted:
        if not isinstance(body, dict) or field not in body:
            raise SystemExit(f"{name}: the body has no `{field}`: {body}")
        if field == "error" and not {"code", "message"} <= set(body["error"]):
            raise SystemExit(f"{name}: the error has no code and message: {body}")
    init, duration = report(log)
    shape = ",".join(sorted(body)) if isinstance(body, dict) and body else "-"
    init_text = f"{init:.0f}" if init is not None else "-"
    duration_text = f"{duration:.0f}" if duration is not None else "-"
    print(f"{got}\t{init_text}\t{duration_text}\t{shape}")


def get(out, field):
    result = answer(out)
    body = json.loads(result["body"]) if "statusCode" in result else result
    print(body[field])


def stream(endpoint, table, out):
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=endpoint)
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint)
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = streams.get_records(ShardIterator=it, Limit=1000)
            for r in page["Records"]:
                d = r["dynamodb"]
                if "ApproximateCreationDateTime" in d:
                    d["ApproximateCreationDateTime"] = int(d["ApproximateCreationDateTime"].timestamp())
                r["eventSourceARN"] = arn
                records.append(r)
            it = page.get("NextShardIterator") if page["Records"] else None
    with open(out, "w") as f:
        json.dump({"Records": records}, f, indent=2)
    print(len(records))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "sam":
        sam(args)
    elif cmd == "template":
        template(*args)
    elif cmd == "functions":
        functions(*args)
    elif cmd == "env":
        env(args[0], args[1:])
    elif cmd == "event":
        event(args[0], args[1], args[2:])
    elif cmd == "check":
        check(*args)
    elif cmd == "get":
        get(*args)
    elif cmd == "stream":
        stream(*args)
    else:
        raise SystemExit(f"unknown command {cmd}")
