"""A capacity model in front of moto: accounts what each DynamoDB request
would consume on DynamoDB, by AWS's rules, and counts KMS calls.

moto answers ReturnConsumedCapacity with made-up constants, so the units are
computed here, from the items themselves (moto's tables are in this process):

- item size: each attribute's name plus its value (strings and binaries by
  length, numbers about one byte per two significant digits plus one, lists
  and maps 3 bytes plus 1 per element, sets by their elements);
- reads per 4 KB (rounded up), a strongly consistent read 1 unit, an
  eventually consistent one 0.5; BatchGetItem item by item; Query on the
  total it returns (a keys-only index: the keys' sizes);
- writes per 1 KB of the larger of the item before and after (rounded up);
  a write also writes each global secondary index whose key attributes the
  item has (put, delete, or an update that changes them);
- TransactWriteItems: 2x every item, ConditionCheck included.

Units are also booked against each item's partition key (table, key value),
so that the load on the busiest partition can be read off.

`GET /__capacity` answers the ledger since the last `POST /__capacity`
(which empties it) as JSON.
"""

import base64
import json
import math
import threading
import time

from moto.dynamodb.models import dynamodb_backends

_lock = threading.Lock()
_ledger = None


def _fresh():
    return {"started": time.time(), "requests": {}, "rcu": 0.0, "wcu": 0.0,
            "kms": {}, "partitions": {}, "by_operation": {}}


_ledger = _fresh()


def _num_size(n):
    digits = n.lstrip("-").replace(".", "").lstrip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def _bin_size(x):
    """A binary's length: DynamoDB JSON carries base64 (moto's stored items
    sometimes the raw bytes as text)."""
    if isinstance(x, (bytes, bytearray)):
        return len(x)
    try:
        return len(base64.b64decode(x, validate=True))
    except (ValueError, TypeError):
        return len(x.encode()) if isinstance(x, str) else 0


def value_size(v):
    (t, x), = v.items()
    if t == "S":
        return len(x.encode())
    if t == "N":
        return _num_size(x)
    if t == "B":
        return _bin_size(x)
    if t in ("BOOL", "NULL"):
        return 1
    if t == "SS":
        return sum(len(s.encode()) for s in x)
    if t == "NS":
        return sum(_num_size(s) for s in x)
    if t == "BS":
        return sum(_bin_size(s) for s in x)
    if t == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if t == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in x.items())
    return 0


def item_size(item):
    if not item:
        return 0
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def _table(name):
    for account in dynamodb_backends.values():
        for backend in account.values():
            if name in backend.tables:
                return backend.tables[name]
    return None


def _stored(table_name, key):
    """The item stored under `key` (DynamoDB JSON), or None."""
    t = _table(table_name)
    if t is None:
        return None
    hash_v = key.get(t.hash_key_attr)
    range_v = key.get(t.range_key_attr) if t.range_key_attr else None
    try:
        from moto.dynamodb.models.dynamo_type import DynamoType
        item = t.get_item(DynamoType(hash_v), DynamoType(range_v) if range_v else None)
    except Exception:
        return None
    return item.to_json()["Attributes"] if item is not None else None


def _key_of(table_name, item):
    t = _table(table_name)
    if t is None or not item:
        return None
    return {a: item[a] for a in (t.hash_key_attr, t.range_key_attr) if a and a in item}


def _partition(table_name, item):
    t = _table(table_name)
    if t is None or not item or t.hash_key_attr not in item:
        return f"{table_name}|?"
    (_, v), = item[t.hash_key_attr].items()
    return f"{table_name}|{v}"


def _gsi_writes(table_name, before, after):
    t = _table(table_name)
    if t is None:
        return 0
    n = 0
    for idx in getattr(t, "global_indexes", []) or []:
        attrs = [k["AttributeName"] for k in idx.schema]
        had = before is not None and all(a in before for a in attrs)
        has = after is not None and all(a in after for a in attrs)
        changed = (before or {}).get(attrs[0]) != (after or {}).get(attrs[0]) or any(
            (before or {}).get(a) != (after or {}).get(a) for a in attrs)
        if (had or has) and (before is None or after is None or changed):
            n += 1
    return n


def _book(kind, units, partition, op):
    _ledger[kind] += units
    p = _ledger["partitions"].setdefault(partition, {"rcu": 0.0, "wcu": 0.0})
    p[kind] += units
    o = _ledger["by_operation"].setdefault(op, {"rcu": 0.0, "wcu": 0.0})
    o[kind] += units


def _read(table, item, consistent, op):
    units = math.ceil(max(item_size(item), 1) / 4096) * (1.0 if consistent else 0.5)
    _book("rcu", units, _partition(table, item), op)


def _write(table, before, after, op, factor=1):
    size = max(item_size(before), item_size(after), 1)
    units = math.ceil(size / 1024) * factor
    _book("wcu", units, _partition(table, after or before), op)
    gsi = _gsi_writes(table, before, after)
    if gsi:
        _book("wcu", gsi * math.ceil(size / 1024), _partition(table, after or before) + "|gsi", op)


def before_dynamodb(op, body):
    """Before-images of the items a write will change."""
    b = {}
    if op in ("UpdateItem", "DeleteItem", "PutItem"):
        b["single"] = _stored(body["TableName"], body.get("Key") or _key_of(body["TableName"], body.get("Item")))
    elif op == "TransactWriteItems":
        out = []
        for t in body.get("TransactItems", []):
            (kind, spec), = t.items()
            key = spec.get("Key") or _key_of(spec["TableName"], spec.get("Item"))
            out.append(_stored(spec["TableName"], key))
        b["items"] = out
    elif op == "BatchWriteItem":
        out = {}
        for table, reqs in body.get("RequestItems", {}).items():
            for r in reqs:
                if "PutRequest" in r:
                    key = _key_of(table, r["PutRequest"]["Item"])
                else:
                    key = r["DeleteRequest"]["Key"]
                out[(table, json.dumps(key, sort_keys=True))] = _stored(table, key)
        b["batch"] = out
    return b


def after_dynamodb(op, body, response, before, status):
    with _lock:
        _ledger["requests"][op] = _ledger["requests"].get(op, 0) + 1
        if status >= 400:
            # A refused write still consumes its units on DynamoDB (a failed
            # condition costs the write); booked as the item it would touch.
            if op in ("PutItem", "UpdateItem", "DeleteItem"):
                old = before.get("single")
                _write(body["TableName"], old, old or body.get("Item"), op)
            elif op == "TransactWriteItems":
                for t, old in zip(body.get("TransactItems", []), before.get("items", [])):
                    (kind, spec), = t.items()
                    _write(spec["TableName"], old, old or spec.get("Item"), op, factor=2)
            return
        if op == "GetItem":
            _read(body["TableName"], response.get("Item"), body.get("ConsistentRead", False), op)
        elif op == "BatchGetItem":
            for table, items in response.get("Responses", {}).items():
                consistent = body["RequestItems"][table].get("ConsistentRead", False)
                for item in items:
                    _read(table, item, consistent, op)
        elif op in ("Query", "Scan"):
            items = response.get("Items", [])
            size = sum(item_size(i) for i in items)
            units = math.ceil(max(size, 1) / 4096) * (1.0 if body.get("ConsistentRead") else 0.5)
            part = _partition(body["TableName"], items[0]) if items else f"{body['TableName']}|?"
            _book("rcu", units, part, op)
        elif op in ("PutItem", "UpdateItem", "DeleteItem"):
            table = body["TableName"]
            key = body.get("Key") or _key_of(table, body.get("Item"))
            after = _stored(table, key)
            _write(table, before.get("single"), after, op)
        elif op == "TransactWriteItems":
            for t, old in zip(body.get("TransactItems", []), before.get("items", [])):
                (kind, spec), = t.items()
                key = spec.get("Key") or _key_of(spec["TableName"], spec.get("Item"))
                after = old if kind == "ConditionCheck" else _stored(spec["TableName"], key)
                _write(spec["TableName"], old, after, op, factor=2)
        elif op == "BatchWriteItem":
            for (table, key_json), old in before.get("batch", {}).items():
                after = _stored(table, json.loads(key_json))
                _write(table, old, after, op)


def book_kms(op):
    with _lock:
        _ledger["kms"][op] = _ledger["kms"].get(op, 0) + 1


def report():
    with _lock:
        out = dict(_ledger)
        out["seconds"] = time.time() - _ledger["started"]
        return json.dumps(out).encode()


def reset():
    global _ledger
    with _lock:
        _ledger = _fresh()
