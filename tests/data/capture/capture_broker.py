#!/usr/bin/env python3
"""Capture broker: a tiny fake Kafka broker that records what real clients send.

This is test-data tooling, not a test double: no Sluice test talks to it. It
exists so that tests/data/captures/ can hold the exact request frames that real
clients (librdkafka via kcat and confluent-kafka, kafka-python) put on the wire.

It answers just enough for those clients to make progress: ApiVersions,
Metadata, Produce, Fetch, ListOffsets, the consumer-group calls, a few admin
calls. Every request frame it receives (without the 4-byte size prefix) is
written to <outdir>/<client>-<seq>-<apiname>-v<version>.bin, subject to a
per-(api, version) cap so the captures stay small.

Messages are encoded and decoded by a small interpreter over the protocol's
JSON schemas (../shared/kafka-protocol/messages by default), so field layouts
come from the same facts the C code generator uses, while every line of the
interpreter is this project's own. Python 3 standard library only.

Usage (stand-alone):
    capture_broker.py --outdir DIR --client NAME [--port P] [--schemas DIR]
The capture driver (capture_all.py) imports it and runs it in a thread.
"""

import argparse
import hashlib
import json
import os
import re
import socket
import struct
import sys
import threading
import time

NODE_ID = 1
CLUSTER_ID = "sluice-capture-cluster"
MAX_FRAME = 64 * 1024 * 1024  # refuse absurd frames rather than buffering them
UNSUPPORTED_VERSION = 35

# What the broker advertises in ApiVersions. Version ranges follow a recent
# Kafka broker; APIs marked as advertised-only are never called by the clients
# we drive, and the broker closes the connection if one is.
ADVERTISED = [
    (0, 0, 9),    # Produce
    (1, 0, 12),   # Fetch
    (2, 0, 7),    # ListOffsets
    (3, 0, 12),   # Metadata
    (8, 0, 8),    # OffsetCommit
    (9, 0, 8),    # OffsetFetch
    (10, 0, 4),   # FindCoordinator
    (11, 0, 9),   # JoinGroup
    (12, 0, 4),   # Heartbeat
    (13, 0, 5),   # LeaveGroup
    (14, 0, 5),   # SyncGroup
    (15, 0, 5),   # DescribeGroups
    (16, 0, 4),   # ListGroups
    (18, 0, 3),   # ApiVersions
    (19, 0, 7),   # CreateTopics
    (20, 0, 6),   # DeleteTopics
    (22, 0, 4),   # InitProducerId
    (29, 0, 3),   # DescribeAcls
    (32, 0, 4),   # DescribeConfigs
    (37, 0, 3),   # CreatePartitions
    (42, 0, 2),   # DeleteGroups
    (48, 0, 1),   # DescribeClientQuotas (advertised only)
]
ADVERTISED_MAX = {k: hi for k, _, hi in ADVERTISED}


# ---------------------------------------------------------------- schemas

def version_in(spec, v):
    """True when version v lies in a schema range such as "3+", "0-7", "5" or "none"."""
    if spec is None or spec == "none":
        return False
    if spec.endswith("+"):
        return v >= int(spec[:-1])
    if "-" in spec:
        lo, hi = spec.split("-")
        return int(lo) <= v <= int(hi)
    return v == int(spec)


class Schemas:
    """Message schemas indexed by (api_key, "request"|"response")."""

    def __init__(self, directory):
        self.by_key = {}
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".json"):
                continue
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                text = re.sub(r"^\s*//.*$", "", f.read(), flags=re.M)
            msg = json.loads(text)
            if msg.get("type") in ("request", "response"):
                self.by_key[(msg["apiKey"], msg["type"])] = msg
        if not self.by_key:
            raise SystemExit("no message schemas found in %s" % directory)

    def get(self, key, kind):
        return self.by_key.get((key, kind))

    def api_name(self, key):
        msg = self.by_key.get((key, "request"))
        return msg["name"][: -len("Request")] if msg else "Unknown%d" % key


# ---------------------------------------------------------------- codec

PRIM = {"int8": "b", "int16": "h", "int32": "i", "int64": "q", "uint16": "H",
        "uint32": "I", "float64": "d", "bool": "?"}
MISSING = object()


class Writer:
    def __init__(self):
        self.parts = []

    def raw(self, b):
        self.parts.append(bytes(b))

    def fmt(self, f, v):
        self.raw(struct.pack(">" + f, v))

    def uvarint(self, n):
        assert n >= 0
        out = bytearray()
        while n >= 0x80:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)
        self.raw(out)

    def getvalue(self):
        return b"".join(self.parts)


class Reader:
    def __init__(self, buf, pos=0):
        self.buf = buf
        self.pos = pos

    def take(self, n):
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError("short read at %d (+%d of %d)" % (self.pos, n, len(self.buf)))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def fmt(self, f):
        size = struct.calcsize(">" + f)
        return struct.unpack(">" + f, self.take(size))[0]

    def uvarint(self):
        n = shift = 0
        for _ in range(5):
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
        raise ValueError("uvarint too long")


class Codec:
    """Encodes and decodes message bodies from the schemas' field lists."""

    def __init__(self, schemas):
        self.schemas = schemas

    @staticmethod
    def _struct_fields(msg, field):
        if "fields" in field:
            return field["fields"]
        elem = field["type"].lstrip("[]")
        for c in msg.get("commonStructs", []):
            if c["name"] == elem:
                return c["fields"]
        raise KeyError("no struct %s in %s" % (elem, msg["name"]))

    @staticmethod
    def _default(field, v):
        t = field["type"]
        d = field.get("default", MISSING)
        nullable = version_in(field.get("nullableVersions"), v)
        if d is not MISSING:
            if d == "null":
                return None if nullable else ("" if t == "string" else None)
            if t in ("int8", "int16", "int32", "int64", "uint16", "uint32"):
                return int(d, 0)
            if t == "bool":
                return d == "true"
            if t == "float64":
                return float(d)
            return d
        if t in PRIM:
            return False if t == "bool" else 0
        if t == "string":
            return ""
        if t in ("bytes", "records"):
            return b"" if t == "bytes" else None
        if t == "uuid":
            return b"\0" * 16
        if t.startswith("[]"):
            return []
        return {}

    # -- encoding
    def encode(self, key, kind, v, values):
        msg = self.schemas.get(key, kind)
        flex = version_in(msg.get("flexibleVersions"), v)
        w = Writer()
        self._enc_fields(w, msg, msg["fields"], values, v, flex)
        return w.getvalue()

    def _enc_fields(self, w, msg, fields, values, v, flex):
        tagged = []
        for f in fields:
            if not version_in(f["versions"], v):
                continue
            if flex and version_in(f.get("taggedVersions"), v):
                if f["name"] in values:
                    tagged.append(f)
                continue
            val = values.get(f["name"], MISSING)
            if val is MISSING:
                val = self._default(f, v)
            self._enc_value(w, msg, f, f["type"], val, v, flex)
        if flex:
            w.uvarint(len(tagged))
            for f in sorted(tagged, key=lambda f: f["tag"]):
                sub = Writer()
                self._enc_value(sub, msg, f, f["type"], values[f["name"]], v, flex)
                body = sub.getvalue()
                w.uvarint(f["tag"])
                w.uvarint(len(body))
                w.raw(body)

    def _enc_value(self, w, msg, f, t, val, v, flex):
        if t in PRIM:
            w.fmt(PRIM[t], val)
        elif t == "uuid":
            assert len(val) == 16
            w.raw(val)
        elif t == "string":
            b = None if val is None else val.encode("utf-8")
            if flex:
                w.uvarint(0 if b is None else len(b) + 1)
            else:
                w.fmt("h", -1 if b is None else len(b))
            if b:
                w.raw(b)
        elif t in ("bytes", "records"):
            if flex:
                w.uvarint(0 if val is None else len(val) + 1)
            else:
                w.fmt("i", -1 if val is None else len(val))
            if val:
                w.raw(val)
        elif t.startswith("[]"):
            if flex:
                w.uvarint(0 if val is None else len(val) + 1)
            else:
                w.fmt("i", -1 if val is None else len(val))
            for item in val or []:
                self._enc_value(w, msg, f, t[2:], item, v, flex)
        else:
            self._enc_fields(w, msg, self._struct_fields(msg, f), val, v, flex)

    # -- decoding
    def decode(self, key, kind, v, buf, pos=0):
        msg = self.schemas.get(key, kind)
        flex = version_in(msg.get("flexibleVersions"), v)
        r = Reader(buf, pos)
        values = self._dec_fields(r, msg, msg["fields"], v, flex)
        return values, r.pos

    def _dec_fields(self, r, msg, fields, v, flex):
        out = {}
        for f in fields:
            if not version_in(f["versions"], v):
                continue
            if flex and version_in(f.get("taggedVersions"), v):
                out[f["name"]] = self._default(f, v)
                continue
            out[f["name"]] = self._dec_value(r, msg, f, f["type"], v, flex)
        if flex:
            by_tag = {f["tag"]: f for f in fields
                      if "tag" in f and version_in(f.get("taggedVersions"), v)}
            for _ in range(r.uvarint()):
                tag = r.uvarint()
                size = r.uvarint()
                data = r.take(size)
                if tag in by_tag:
                    f = by_tag[tag]
                    out[f["name"]] = self._dec_value(Reader(data), msg, f, f["type"], v, flex)
        return out

    def _dec_value(self, r, msg, f, t, v, flex):
        if t in PRIM:
            return r.fmt(PRIM[t])
        if t == "uuid":
            return r.take(16)
        if t in ("string", "bytes", "records"):
            n = (r.uvarint() - 1) if flex else r.fmt("h" if t == "string" else "i")
            if n < 0:
                return None
            b = r.take(n)
            return b.decode("utf-8") if t == "string" else b
        if t.startswith("[]"):
            n = (r.uvarint() - 1) if flex else r.fmt("i")
            if n < 0:
                return None
            if n > len(r.buf):
                raise ValueError("array count %d exceeds frame" % n)
            return [self._dec_value(r, msg, f, t[2:], v, flex) for _ in range(n)]
        return self._dec_fields(r, msg, self._struct_fields(msg, f), v, flex)


# ---------------------------------------------------------------- broker state

def topic_uuid(name):
    return hashlib.md5(("sluice:" + name).encode()).digest()


def batch_spans(records):
    """Yields (start, end, magic, record_count) for each batch or message in a records blob."""
    pos = 0
    while records is not None and pos + 17 <= len(records):
        size = struct.unpack_from(">i", records, pos + 8)[0]
        end = pos + 12 + size
        if size < 5 or end > len(records):
            return
        magic = records[pos + 16]
        count = struct.unpack_from(">i", records, pos + 57)[0] if magic == 2 else 1
        yield pos, end, magic, count
        pos = end


class State:
    """Topics, produced batches and the single consumer group, shared by all connections."""

    def __init__(self, default_partitions):
        self.lock = threading.Lock()
        self.default_partitions = default_partitions
        self.topics = {}      # name -> partition count
        self.logs = {}        # (topic, partition) -> list of (base_offset, bytes)
        self.next_offset = {}  # (topic, partition) -> int
        self.members = 0
        self.assignment = {}  # member id -> bytes
        self.member_meta = {}  # member id -> bytes
        self.groups = set()   # group ids seen in JoinGroup

    def ensure_topic(self, name, partitions=None):
        with self.lock:
            if name not in self.topics:
                self.topics[name] = partitions or self.default_partitions
            return self.topics[name]

    def append(self, topic, part, records):
        with self.lock:
            base = self.next_offset.get((topic, part), 0)
            off = base
            for start, end, magic, count in batch_spans(records):
                batch = bytearray(records[start:end])
                if magic == 2:
                    # The CRC does not cover baseOffset, so the broker may rewrite it.
                    struct.pack_into(">q", batch, 0, off)
                    self.logs.setdefault((topic, part), []).append((off, bytes(batch)))
                off += count
            self.next_offset[(topic, part)] = off
            return base

    def read(self, topic, part, offset, max_bytes):
        with self.lock:
            out = b""
            for base, batch in self.logs.get((topic, part), []):
                last = base + struct.unpack_from(">i", batch, 23)[0]
                if last >= offset and len(out) + len(batch) <= max(max_bytes, len(batch)):
                    out += batch
                if len(out) >= max_bytes:
                    break
            return out, self.next_offset.get((topic, part), 0)


# ---------------------------------------------------------------- handlers

class Handlers:
    """One method per API: request values in, response values out (None: no response)."""

    def __init__(self, broker):
        self.b = broker
        self.st = broker.state

    def api_versions(self, v, req):
        keys = [{"ApiKey": k, "MinVersion": lo, "MaxVersion": hi} for k, lo, hi in ADVERTISED]
        return {"ErrorCode": 0, "ApiKeys": keys, "ThrottleTimeMs": 0}

    def _topic_meta(self, name, v):
        n = self.st.ensure_topic(name)
        parts = [{"ErrorCode": 0, "PartitionIndex": i, "LeaderId": NODE_ID, "LeaderEpoch": 0,
                  "ReplicaNodes": [NODE_ID], "IsrNodes": [NODE_ID], "OfflineReplicas": []}
                 for i in range(n)]
        return {"ErrorCode": 0, "Name": name, "TopicId": topic_uuid(name), "IsInternal": False,
                "Partitions": parts}

    def metadata(self, v, req):
        if req.get("Topics") is None:
            names = sorted(self.st.topics)
        else:
            names = [t["Name"] for t in req["Topics"] if t.get("Name")]
        return {
            "ThrottleTimeMs": 0,
            "Brokers": [{"NodeId": NODE_ID, "Host": self.b.host, "Port": self.b.port, "Rack": None}],
            "ClusterId": CLUSTER_ID,
            "ControllerId": NODE_ID,
            "Topics": [self._topic_meta(n, v) for n in names],
        }

    def produce(self, v, req):
        out = []
        for t in req["TopicData"]:
            self.st.ensure_topic(t["Name"])
            parts = []
            for p in t["PartitionData"]:
                base = self.st.append(t["Name"], p["Index"], p["Records"])
                parts.append({"Index": p["Index"], "ErrorCode": 0, "BaseOffset": base,
                              "LogAppendTimeMs": -1, "LogStartOffset": 0, "RecordErrors": [],
                              "ErrorMessage": None})
            out.append({"Name": t["Name"], "PartitionResponses": parts})
        if req["Acks"] == 0:
            return None  # acks=0: the client expects no response at all
        return {"Responses": out, "ThrottleTimeMs": 0}

    def fetch(self, v, req):
        resp = []
        for t in req["Topics"]:
            name = t.get("Topic")
            if name is None:
                name = next((n for n in self.st.topics if topic_uuid(n) == t.get("TopicId")), "")
            parts = []
            for p in t["Partitions"]:
                recs, hw = self.st.read(name, p["Partition"], p["FetchOffset"], p["PartitionMaxBytes"])
                parts.append({"PartitionIndex": p["Partition"], "ErrorCode": 0, "HighWatermark": hw,
                              "LastStableOffset": hw, "LogStartOffset": 0, "AbortedTransactions": None,
                              "PreferredReadReplica": -1, "Records": recs})
            resp.append({"Topic": name, "TopicId": topic_uuid(name), "Partitions": parts})
        if not any(p["Records"] for t in resp for p in t["Partitions"]):
            # Emulate long polling a little so idle consumers do not spin.
            time.sleep(min(max(req.get("MaxWaitMs", 0), 0), 200) / 1000.0)
        return {"ThrottleTimeMs": 0, "ErrorCode": 0, "SessionId": 0, "Responses": resp}

    def list_offsets(self, v, req):
        topics = []
        for t in req["Topics"]:
            parts = []
            for p in t["Partitions"]:
                _, hw = self.st.read(t["Name"], p["PartitionIndex"], 1 << 62, 0)
                off = 0 if p["Timestamp"] == -2 else hw
                parts.append({"PartitionIndex": p["PartitionIndex"], "ErrorCode": 0,
                              "OldStyleOffsets": [off], "Timestamp": -1, "Offset": off, "LeaderEpoch": 0})
            topics.append({"Name": t["Name"], "Partitions": parts})
        return {"ThrottleTimeMs": 0, "Topics": topics}

    def find_coordinator(self, v, req):
        keys = req.get("CoordinatorKeys") or [req.get("Key", "")]
        return {"ThrottleTimeMs": 0, "ErrorCode": 0, "ErrorMessage": None, "NodeId": NODE_ID,
                "Host": self.b.host, "Port": self.b.port,
                "Coordinators": [{"Key": k, "NodeId": NODE_ID, "Host": self.b.host, "Port": self.b.port,
                                  "ErrorCode": 0, "ErrorMessage": None} for k in keys]}

    def join_group(self, v, req):
        with self.st.lock:
            member = req["MemberId"]
            if not member:
                self.st.members += 1
                member = "%s-member-%d" % (self.b.client, self.st.members)
            proto = req["Protocols"][0]
            self.st.groups.add(req["GroupId"])
            self.st.member_meta = {member: proto["Metadata"]}
        return {"ThrottleTimeMs": 0, "ErrorCode": 0, "GenerationId": 1, "ProtocolType": req["ProtocolType"],
                "ProtocolName": proto["Name"], "Leader": member, "SkipAssignment": False,
                "MemberId": member,
                "Members": [{"MemberId": member, "GroupInstanceId": None, "Metadata": proto["Metadata"]}]}

    def sync_group(self, v, req):
        mine = b""
        for a in req["Assignments"] or []:
            if a["MemberId"] == req["MemberId"]:
                mine = a["Assignment"]
        with self.st.lock:
            if req["Assignments"]:
                self.st.assignment[req["MemberId"]] = mine
            mine = self.st.assignment.get(req["MemberId"], mine)
        return {"ThrottleTimeMs": 0, "ErrorCode": 0, "ProtocolType": req.get("ProtocolType"),
                "ProtocolName": req.get("ProtocolName"), "Assignment": mine}

    def heartbeat(self, v, req):
        return {"ThrottleTimeMs": 0, "ErrorCode": 0}

    def leave_group(self, v, req):
        members = [{"MemberId": m["MemberId"], "GroupInstanceId": m.get("GroupInstanceId"), "ErrorCode": 0}
                   for m in req.get("Members") or []]
        return {"ThrottleTimeMs": 0, "ErrorCode": 0, "Members": members}

    @staticmethod
    def _no_offsets(topics):
        return [{"Name": t["Name"], "Partitions": [
            {"PartitionIndex": i, "CommittedOffset": -1, "CommittedLeaderEpoch": -1, "Metadata": "",
             "ErrorCode": 0} for i in t["PartitionIndexes"]]} for t in topics or []]

    def offset_fetch(self, v, req):
        groups = [{"GroupId": g["GroupId"], "Topics": self._no_offsets(g["Topics"]), "ErrorCode": 0}
                  for g in req.get("Groups") or []]
        return {"ThrottleTimeMs": 0, "Topics": self._no_offsets(req.get("Topics")), "ErrorCode": 0,
                "Groups": groups}

    def offset_commit(self, v, req):
        return {"ThrottleTimeMs": 0, "Topics": [
            {"Name": t["Name"], "Partitions": [{"PartitionIndex": p["PartitionIndex"], "ErrorCode": 0}
                                               for p in t["Partitions"]]} for t in req["Topics"]]}

    def create_topics(self, v, req):
        out = []
        for t in req["Topics"]:
            n = t["NumPartitions"] if t["NumPartitions"] > 0 else self.st.default_partitions
            if not req.get("validateOnly"):
                self.st.ensure_topic(t["Name"], n)
            out.append({"Name": t["Name"], "TopicId": topic_uuid(t["Name"]), "ErrorCode": 0,
                        "ErrorMessage": None, "NumPartitions": n,
                        "ReplicationFactor": max(t["ReplicationFactor"], 1), "Configs": []})
        return {"ThrottleTimeMs": 0, "Topics": out}

    def delete_topics(self, v, req):
        names = req.get("TopicNames") or [t.get("Name") for t in req.get("Topics") or []]
        with self.st.lock:
            for n in names:
                self.st.topics.pop(n, None)
        return {"ThrottleTimeMs": 0, "Responses": [
            {"Name": n, "TopicId": topic_uuid(n or ""), "ErrorCode": 0, "ErrorMessage": None} for n in names]}

    def describe_configs(self, v, req):
        results = []
        for r in req["Resources"]:
            cfg = [("cleanup.policy", "delete"), ("retention.ms", "604800000")]
            if r["ConfigurationKeys"] is not None:
                cfg = [(k, "0") for k in r["ConfigurationKeys"]]
            results.append({"ErrorCode": 0, "ErrorMessage": None, "ResourceType": r["ResourceType"],
                            "ResourceName": r["ResourceName"], "Configs": [
                                {"Name": k, "Value": val, "ReadOnly": False, "IsDefault": True,
                                 "ConfigSource": 5, "IsSensitive": False, "Synonyms": [], "ConfigType": 0,
                                 "Documentation": None} for k, val in cfg]})
        return {"ThrottleTimeMs": 0, "Results": results}

    def init_producer_id(self, v, req):
        return {"ThrottleTimeMs": 0, "ErrorCode": 0, "ProducerId": 4000, "ProducerEpoch": 0}

    def list_groups(self, v, req):
        with self.st.lock:
            groups = sorted(self.st.groups)
        return {"ThrottleTimeMs": 0, "ErrorCode": 0, "Groups": [
            {"GroupId": g, "ProtocolType": "consumer", "GroupState": "Empty", "GroupType": "classic"}
            for g in groups]}

    def describe_groups(self, v, req):
        return {"ThrottleTimeMs": 0, "Groups": [
            {"ErrorCode": 0, "GroupId": g, "GroupState": "Empty", "ProtocolType": "consumer",
             "ProtocolData": "", "Members": []} for g in req["Groups"]]}

    def create_partitions(self, v, req):
        out = []
        for t in req["Topics"]:
            with self.st.lock:
                if t["Name"] in self.st.topics and not req["ValidateOnly"]:
                    self.st.topics[t["Name"]] = max(self.st.topics[t["Name"]], t["Count"])
            out.append({"Name": t["Name"], "ErrorCode": 0, "ErrorMessage": None})
        return {"ThrottleTimeMs": 0, "Results": out}

    def delete_groups(self, v, req):
        return {"ThrottleTimeMs": 0, "Results": [{"GroupId": g, "ErrorCode": 0} for g in req["GroupsNames"]]}

    def describe_acls(self, v, req):
        return {"ThrottleTimeMs": 0, "ErrorCode": 0, "ErrorMessage": None, "Resources": []}

    TABLE = {0: "produce", 1: "fetch", 2: "list_offsets", 3: "metadata", 8: "offset_commit",
             9: "offset_fetch", 10: "find_coordinator", 11: "join_group", 12: "heartbeat",
             13: "leave_group", 14: "sync_group", 15: "describe_groups", 16: "list_groups",
             18: "api_versions", 19: "create_topics", 20: "delete_topics", 22: "init_producer_id",
             29: "describe_acls", 32: "describe_configs", 37: "create_partitions", 42: "delete_groups"}


# ---------------------------------------------------------------- server

def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class CaptureBroker:
    """Listens on host:port; one thread per connection; records frames into outdir."""

    def __init__(self, outdir, client, schemas_dir, host="127.0.0.1", port=0, partitions=1,
                 max_per_api=2, log=sys.stderr):
        self.schemas = Schemas(schemas_dir)
        self.codec = Codec(self.schemas)
        self.outdir = outdir
        self.client = client
        self.max_per_api = max_per_api
        self.record_only = None  # optional set of api keys to record
        self.log = log
        self.state = State(partitions)
        self.handlers = Handlers(self)
        self.lock = threading.Lock()
        self.counts = {}
        self.seq = 0
        self.stopping = False
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        os.makedirs(outdir, exist_ok=True)
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    def set_client(self, client, max_per_api=None, record_only=None):
        """Switches the capture label between client runs; counts restart per label."""
        with self.lock:
            self.client = client
            self.counts = {}
            if max_per_api is not None:
                self.max_per_api = max_per_api
            self.record_only = record_only

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _next_seq(self):
        """Next sequence number for this client label, continuing after files already in outdir."""
        prefix = self.client + "-"
        best = self.seq
        for name in os.listdir(self.outdir):
            m = re.match(re.escape(prefix) + r"(\d+)-", name)
            if m:
                best = max(best, int(m.group(1)))
        self.seq = best + 1
        return self.seq

    def _record(self, key, version, frame):
        api = self.schemas.api_name(key)
        with self.lock:
            if self.record_only is not None and key not in self.record_only:
                return
            n = self.counts.get((key, version), 0)
            if n >= self.max_per_api:
                return
            self.counts[(key, version)] = n + 1
            seq = self._next_seq()
            path = os.path.join(self.outdir, "%s-%03d-%s-v%d.bin" % (self.client, seq, api, version))
            with open(path, "wb") as f:
                f.write(frame)

    def _respond(self, conn, key, version, corr, body):
        resp = self.schemas.get(key, "response")
        hdr = struct.pack(">i", corr)
        # ApiVersions answers always use response header v0 so clients can parse them blind.
        if key != 18 and version_in(resp.get("flexibleVersions"), version):
            hdr += b"\0"
        payload = hdr + body
        conn.sendall(struct.pack(">i", len(payload)) + payload)

    def _serve(self, conn):
        conn.settimeout(30)
        try:
            while not self.stopping:
                head = read_exact(conn, 4)
                if head is None:
                    return
                size = struct.unpack(">i", head)[0]
                if size < 8 or size > MAX_FRAME:
                    return
                frame = read_exact(conn, size)
                if frame is None:
                    return
                if not self._handle(conn, frame):
                    return
        except (OSError, ValueError) as e:
            print("capture-broker: connection error: %r" % (e,), file=self.log)
        finally:
            conn.close()

    def _handle(self, conn, frame):
        key, version, corr = struct.unpack_from(">hhi", frame, 0)
        self._record(key, version, frame)
        req_schema = self.schemas.get(key, "request")
        name = self.schemas.api_name(key)
        if key == 18 and version > ADVERTISED_MAX[18]:
            # Unknown ApiVersions version: v0 layout with UNSUPPORTED_VERSION and our ranges.
            body = self.codec.encode(18, "response", 0, dict(self.handlers.api_versions(0, {}),
                                                             ErrorCode=UNSUPPORTED_VERSION))
            self._respond(conn, key, 0, corr, body)
            return True
        method = Handlers.TABLE.get(key)
        if req_schema is None or method is None or version > ADVERTISED_MAX.get(key, -1):
            print("capture-broker: %s v%d not served; closing" % (name, version), file=self.log)
            return False
        r = Reader(frame, 8)
        clen = r.fmt("h")
        if clen > 0:
            r.take(clen)
        if version_in(req_schema.get("flexibleVersions"), version):
            for _ in range(r.uvarint()):
                r.uvarint()
                r.take(r.uvarint())
        req, end = self.codec.decode(key, "request", version, frame, r.pos)
        if end != len(frame):
            print("capture-broker: %s v%d: %d trailing bytes" % (name, version, len(frame) - end),
                  file=self.log)
        resp = getattr(self.handlers, method)(version, req)
        if resp is None:
            return True
        self._respond(conn, key, version, corr, self.codec.encode(key, "response", version, resp))
        return True


def default_schemas_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", "..", ".."))
    return os.path.join(os.path.dirname(repo), "shared", "kafka-protocol", "messages")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--client", default="client")
    ap.add_argument("--port", type=int, default=9092)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--max-per-api", type=int, default=2)
    ap.add_argument("--schemas", default=default_schemas_dir())
    ap.add_argument("--seconds", type=float, default=600, help="stop after this long")
    a = ap.parse_args()
    b = CaptureBroker(a.outdir, a.client, a.schemas, port=a.port, partitions=a.partitions,
                      max_per_api=a.max_per_api).start()
    print("capture-broker listening on 127.0.0.1:%d" % b.port, flush=True)
    try:
        time.sleep(a.seconds)
    except KeyboardInterrupt:
        pass
    b.stop()


if __name__ == "__main__":
    main()
