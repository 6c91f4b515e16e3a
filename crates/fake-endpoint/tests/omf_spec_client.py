#!/usr/bin/env python3
"""An OMF client written from the OMF specification (AVEVA/OMF-Docs: headers.md,
message-types.md, http-behaviors.md) and Edge Data Store's documented read API, not from
failover-lab's code. Python's standard library only.

Usage: omf_spec_client.py BASE_URL
  BASE_URL: the namespace, as http://127.0.0.1:5590/api/v1/tenants/default/namespaces/default

It posts types, containers and data (plain and gzip), updates and deletes, reads back, and
checks the answers the specification gives (2xx, 400, 409, 413). Exits 1 naming the first
check that failed.
"""

import gzip
import json
import sys
import urllib.error
import urllib.request

BASE = sys.argv[1].rstrip("/")
OMF = BASE + "/omf"


def post(message_type, body, action=None, compress=False, raw=None, version="1.2"):
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {
        "messagetype": message_type,
        "messageformat": "JSON",
        "omfversion": version,
        "Content-Type": "application/json",
    }
    if action:
        headers["action"] = action
    if compress:
        data = gzip.compress(data)
        headers["compression"] = "gzip"
    req = urllib.request.Request(OMF, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get(path):
    try:
        with urllib.request.urlopen(BASE + path, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def check(what, ok, detail=""):
    if not ok:
        print(f"FAILED: {what} {detail}")
        sys.exit(1)
    print(f"ok: {what}")


def success(status):
    # http-behaviors.md: 200, 202 and 204 are success.
    return status in (200, 201, 202, 204)


TYPE = {
    "id": "SpecTank",
    "type": "object",
    "classification": "dynamic",
    "properties": {
        "Time": {"type": "string", "format": "date-time", "isindex": True},
        "Level": {"type": "number", "format": "float64"},
        "Alarm": {"type": ["boolean", "null"]},
    },
}
ASSET = {
    "id": "SpecSite",
    "type": "object",
    "classification": "static",
    "properties": {
        "Name": {"type": "string", "isindex": True},
        "Location": {"type": "string"},
    },
}

status, _ = post("type", [TYPE, ASSET])
check("types are created", success(status), status)
status, _ = post("type", [TYPE])
check("the same type again is no error", success(status), status)
changed = json.loads(json.dumps(TYPE))
changed["properties"]["Level"] = {"type": "string"}
status, _ = post("type", [changed])
check("a conflicting redefinition is 409", status == 409, status)

status, _ = post("container", [{"id": "spec.tank1", "typeid": "SpecTank"},
                               {"id": "spec.tank2", "typeid": "SpecTank"}])
check("containers are created", success(status), status)
status, body = post("container", [{"id": "spec.tank3", "typeid": "NoSuchType"}])
check("a container of an unknown type is 400", status == 400, status)

status, _ = post("data", [{"typeid": "SpecSite", "values": [{"Name": "North", "Location": "Hill"}]}])
check("static data is taken", success(status), status)


def values(first, n):
    return [{"Time": f"2026-01-01T00:00:{s:02d}Z", "Level": float(s), "Alarm": s % 2 == 0}
            for s in range(first, first + n)]


status, _ = post("data", [{"containerid": "spec.tank1", "values": values(0, 10)}])
check("data (plain) is taken", success(status), status)
status, _ = post("data", [{"containerid": "spec.tank2", "values": values(0, 20)}], compress=True)
check("data (gzip) is taken", success(status), status)

status, last = get("/streams/spec.tank1/data/last")
check("the last value reads back", status == 200 and last and last.get("Level") == 9.0, last)
status, window = get("/streams/spec.tank2/data?startIndex=2026-01-01T00:00:05Z"
                     "&endIndex=2026-01-01T00:00:09Z")
check("a window reads back", status == 200 and [v["Level"] for v in window] == [5.0, 6.0, 7.0, 8.0, 9.0],
      window)
status, streams = get("/streams")
ids = sorted(s.get("Id") for s in streams or [])
check("the streams are listed", "spec.tank1" in ids and "spec.tank2" in ids, ids)
status, types = get("/types")
check("the types are listed", any(t.get("id") == "SpecTank" for t in types or []), types)

status, _ = post("data", [{"containerid": "spec.tank1",
                           "values": [{"Time": "2026-01-01T00:00:03Z", "Level": 33.5}]}],
                 action="update")
check("an update is taken", success(status), status)
status, window = get("/streams/spec.tank1/data?startIndex=2026-01-01T00:00:03Z"
                     "&endIndex=2026-01-01T00:00:03Z")
check("the update reads back", status == 200 and window and window[0]["Level"] == 33.5, window)

status, _ = post("data", [{"containerid": "spec.tank1",
                           "values": [{"Time": "2026-01-01T00:00:09Z"}]}], action="delete")
check("a value is deleted", success(status), status)
status, last = get("/streams/spec.tank1/data/last")
check("the deleted value is gone", status == 200 and last["Level"] == 8.0, last)

status, _ = post("data", [{"containerid": "spec.tank1",
                           "values": [{"Time": "2026-01-01T00:00:10Z", "Level": "high"}]}])
check("a value that does not fit its type is 400", status == 400, status)
status, _ = post("data", [{"containerid": "spec.nowhere", "values": values(0, 1)}])
check("data for an unknown container is 400", status == 400, status)
status, _ = post("data", None, raw=b"this is not json")
check("a body that is not JSON is 400", status == 400, status)
status, _ = post("data", [], version="0.9")
check("an unknown omfversion is 400", status == 400, status)
status, _ = post("sample", [])
check("an unknown messagetype is 400", status == 400, status)
big = [{"containerid": "spec.tank1", "values": values(0, 1)}] * 4000
status, _ = post("data", big)
check("a body over 192 KB is 413", status == 413, status)

status, _ = post("container", [{"id": "spec.tank2", "typeid": "SpecTank"}], action="delete")
check("a container is deleted", success(status), status)
status, _ = post("data", [{"containerid": "spec.tank2", "values": values(30, 1)}])
check("data for a deleted container is 400", status == 400, status)
status, _ = get("/streams/spec.tank2")
check("a deleted stream reads as not found", status == 404, status)

print("all checks passed")
