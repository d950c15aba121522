#!/usr/bin/env python3
"""protogen.py - generates Sluice's Kafka message codecs from the protocol schemas.

Reads the JSON message schemas (../shared/kafka-protocol/messages relative to
the repository root, or --spec DIR) and writes:

  src/proto/gen/kafka_msgs.h          every message struct, the API table, error codes
  src/proto/gen/kafka_gen_internal.h  helpers shared by the generated .c files
  src/proto/gen/api_<name>.c          request + response codec of one API
  src/proto/gen/kafka_api.c           the API table and its type-erased wrappers
  src/proto/gen/kafka_errors.c        error code names
  tests/unit/gen/roundtrip_fill.c     pseudo-random fillers used by the roundtrip test

and, from Kafka's internal record schemas (../records beside the messages
folder, plus the "data" schemas of the messages folder such as VotersRecord):

  src/proto/gen/kafka_records.h       record structs, the metadata record table
  src/proto/gen/records_<folder>.c    codecs of one folder's records (metadata, group, ...)
  tests/unit/gen/records_fill.c       pseudo-random fillers for the records roundtrip test

Only APIs whose request lists a "broker" or "controller" listener are emitted.
Output is deterministic (sorted by API key, no timestamps) so CI can regenerate
and `git diff --exit-code`. Standard library only; any python3 runs it.

Shape of the generated code: one decode, encode, size and init function per
struct (message or nested), with `if (version >= X)` conditions for versioned
fields, rather than one function per version.
"""

import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SPEC = os.path.join(ROOT, "..", "shared", "kafka-protocol", "messages")
INF = 0x7FFF  # versions are int16

# ---------------------------------------------------------------------------
# Schema reading


def strip_comments(text):
    """Removes // comments that are outside JSON strings."""
    out = []
    i, n = 0, len(text)
    in_str = False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
        elif c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_versions(s):
    """'3+' -> (3, INF); '1-4' -> (1, 4); '5' -> (5, 5); 'none' -> None."""
    if s is None:
        return None
    s = str(s).strip()
    if s == "none" or s == "":
        return None
    if s.endswith("+"):
        return (int(s[:-1]), INF)
    if "-" in s:
        a, b = s.split("-")
        return (int(a), int(b))
    return (int(s), int(s))


def vr_intersect(a, b):
    if a is None or b is None:
        return None
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo <= hi else None


def vr_hull(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), max(a[1], b[1]))


def cond(rng, ctx):
    """C condition for `version in rng`, knowing version is within ctx.
    Returns None when never true, "" when always true, else an expression."""
    if vr_intersect(rng, ctx) is None:
        return None
    parts = []
    if rng[0] > ctx[0]:
        parts.append("version >= %d" % rng[0])
    if rng[1] < ctx[1]:
        parts.append("version <= %d" % rng[1])
    return " && ".join(parts)


def cexpr(c):
    """A condition as a C boolean expression."""
    if c is None:
        return "false"
    if c == "":
        return "true"
    return "(" + c + ")"


def snake(name):
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return s.lower()


C_KEYWORDS = set(
    "auto break case char const continue default do double else enum extern float for goto if inline int "
    "long register restrict return short signed sizeof static struct switch typedef union unsigned void "
    "volatile while bool true false".split()
)

SCALARS = {
    # type: (C type, reader, writer, wire size)
    "int8": ("int8_t", "wire_read_i8", "wire_write_i8", 1),
    "int16": ("int16_t", "wire_read_i16", "wire_write_i16", 2),
    "uint16": ("uint16_t", "wire_read_u16", "wire_write_u16", 2),
    "int32": ("int32_t", "wire_read_i32", "wire_write_i32", 4),
    "uint32": ("uint32_t", "wire_read_u32", "wire_write_u32", 4),
    "int64": ("int64_t", "wire_read_i64", "wire_write_i64", 8),
    "float64": ("double", "wire_read_f64", "wire_write_f64", 8),
    "bool": ("bool", "wire_read_bool", "wire_write_bool", 1),
    "uuid": ("kuuid", "wire_read_uuid", "wire_write_uuid", 16),
}
VARLEN = {"string": "kstr", "bytes": "kbytes", "records": "kbytes"}
PRIMS = set(SCALARS) | set(VARLEN)

INT_LIMITS = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "uint16": (0, (1 << 16) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "uint32": (0, (1 << 32) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
}


class Field:
    pass


class Struct:
    def __init__(self, msg, sname, cname):
        self.msg = msg
        self.sname = sname
        self.cname = cname  # C type name, e.g. kafka_fetch_request_fetch_topic
        self.fields = []
        self.ctx = None  # hull of the versions in which this struct can be encoded
        self.top = False


class Message:
    pass


def c_str_literal(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= o < 127:
            out.append(ch)
        else:
            for b in ch.encode("utf-8"):
                out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def load_message(path):
    with open(path, encoding="utf-8") as f:
        return json.loads(strip_comments(f.read()))


def build_message(js):
    """Resolves a schema into Struct/Field objects."""
    m = Message()
    m.name = js["name"]
    m.kind = js["type"]
    m.key = js.get("apiKey")
    m.valid = parse_versions(js["validVersions"])
    m.flex = parse_versions(js.get("flexibleVersions", "none"))
    m.listeners = js.get("listeners", [])
    m.unstable = bool(js.get("latestVersionUnstable", False))
    m.cname = "kafka_" + snake(m.name)
    m.structs = {}  # schema struct name -> Struct
    m.order = []  # structs, children before parents

    defs = {}  # schema struct name -> fields json

    def collect(fields):
        for f in fields:
            if "fields" in f:
                t = f["type"][2:] if f["type"].startswith("[]") else f["type"]
                if t in defs:
                    raise SystemExit("%s: struct %s defined twice" % (m.name, t))
                defs[t] = f["fields"]
                collect(f["fields"])

    collect(js["fields"])
    for cs in js.get("commonStructs", []):
        if cs["name"] in defs:
            raise SystemExit("%s: struct %s defined twice" % (m.name, cs["name"]))
        defs[cs["name"]] = cs["fields"]
        collect(cs["fields"])

    def make_struct(sname, fields_js, top=False):
        if sname in m.structs:
            return m.structs[sname]
        cname = m.cname if top else m.cname + "_" + snake(sname)
        s = Struct(m, sname, cname)
        s.top = top
        m.structs[sname] = s
        seen = set()
        for fj in fields_js:
            f = Field()
            f.sname = fj["name"]
            f.name = snake(fj["name"])
            if f.name in C_KEYWORDS:
                f.name += "_"
            t = fj["type"]
            f.is_array = t.startswith("[]")
            base = t[2:] if f.is_array else t
            f.versions = parse_versions(fj.get("versions"))
            f.nullable = parse_versions(fj.get("nullableVersions"))
            f.tagged = parse_versions(fj.get("taggedVersions")) if "tag" in fj else None
            f.tag = int(fj["tag"]) if "tag" in fj else None
            ign = fj.get("ignorable", False)
            f.ignorable = ign is True or ign == "true"
            f.default = fj.get("default")
            if base in PRIMS:
                f.type = base
                f.struct = None
            else:
                if base not in defs:
                    raise SystemExit("%s: unknown type %s" % (m.name, base))
                f.type = "struct"
                f.struct = make_struct(base, defs[base])
            # A struct that may be null on the wire carries a presence flag.
            f.nullable_struct = f.type == "struct" and not f.is_array and f.nullable is not None
            for extra in ([f.name + "_count"] if f.is_array else []) + (
                ["has_" + f.name] if f.nullable_struct else []
            ) + [f.name]:
                if extra in seen:
                    raise SystemExit("%s: member name clash %s" % (s.cname, extra))
                seen.add(extra)
            s.fields.append(f)
        m.order.append(s)
        return s

    m.top = make_struct(m.name, js["fields"], top=True)

    # Version contexts: a nested struct is only ever coded at versions where
    # its field exists, which lets the generator drop always-true conditions.
    def walk(s, ctx):
        s.ctx = vr_hull(s.ctx, ctx)
        for f in s.fields:
            if f.struct is not None:
                sub = vr_intersect(f.versions, ctx)
                if sub is not None:
                    walk(f.struct, sub)

    walk(m.top, m.valid)
    for s in m.order:
        if s.ctx is None:  # only reachable through fields that never exist
            s.ctx = m.valid
    return m


# ---------------------------------------------------------------------------
# C fragments per field


def int_literal(t, v):
    v = int(v, 0) if isinstance(v, str) else int(v)
    lo, hi = INT_LIMITS[t]
    if not lo <= v <= hi:
        raise SystemExit("default %d out of range for %s" % (v, t))
    if t == "int64":
        if v == lo:
            return "INT64_MIN"
        return "INT64_C(%d)" % v
    if t == "int32" and v == lo:
        return "INT32_MIN"
    if t == "uint32":
        return "UINT32_C(%d)" % v
    return str(v)


def default_bool(v):
    if isinstance(v, bool):
        return v
    return str(v).lower() == "true"


def default_init(f, acc):
    """Lines setting member `acc` to its schema default (after memset 0)."""
    d = f.default
    if f.is_array:
        return ["%s_count = -1;" % acc] if d == "null" else []
    if f.type == "struct":
        lines = ["%s_init(&%s);" % (f.struct.cname, acc)]
        if f.nullable_struct and d != "null":
            lines.append("%s = true;" % has_acc(acc))
        return lines
    if f.type in INT_LIMITS:
        if d is None or int_literal(f.type, d) in ("0", "INT64_C(0)", "UINT32_C(0)"):
            return []
        return ["%s = %s;" % (acc, int_literal(f.type, d))]
    if f.type == "bool":
        return ["%s = true;" % acc] if d is not None and default_bool(d) else []
    if f.type == "float64":
        return ["%s = %s;" % (acc, repr(float(d)))] if d is not None and float(d) != 0 else []
    if f.type == "string":
        if d == "null":
            return ["%s = KSTR_NULL;" % acc]
        if d:
            return ["%s = (kstr){%s, %d};" % (acc, c_str_literal(d), len(d.encode()))]
        return []
    if f.type == "records":
        return ["%s = KBYTES_NULL;" % acc]  # records default to null
    if f.type == "bytes":
        return ["%s = KBYTES_NULL;" % acc] if d == "null" else []
    return []  # uuid: zero


def has_acc(acc):
    """The presence flag of a nullable struct member: m->x -> m->has_x."""
    i = max(acc.rfind(">"), acc.rfind("."))
    return acc[: i + 1] + "has_" + acc[i + 1 :]


def nondefault(f, acc):
    """C expression true when member `acc` differs from its default."""
    d = f.default
    if f.is_array:
        return "%s_count != %d" % (acc, -1 if d == "null" else 0)
    if f.type == "struct":
        if f.nullable_struct:
            if d == "null":
                return has_acc(acc)
            return "(!%s || !%s_is_default_(&%s))" % (has_acc(acc), f.struct.cname, acc)
        return "!%s_is_default_(&%s)" % (f.struct.cname, acc)
    if f.type in INT_LIMITS:
        return "%s != %s" % (acc, int_literal(f.type, d if d is not None else 0))
    if f.type == "bool":
        return "%s != %s" % (acc, "true" if d is not None and default_bool(d) else "false")
    if f.type == "float64":
        return "%s != %s" % (acc, repr(float(d)) if d is not None else "0.0")
    if f.type == "uuid":
        return "!kuuid_is_zero(%s)" % acc
    if f.type == "string":
        if d == "null":
            return "%s.len >= 0" % acc
        if d:
            return "!kstr_eq(%s, (kstr){%s, %d})" % (acc, c_str_literal(d), len(d.encode()))
        return "%s.len != 0" % acc
    if f.type == "records":
        return "%s.len >= 0" % acc
    if f.type == "bytes":
        return "%s.len %s" % (acc, ">= 0" if d == "null" else "!= 0")
    raise AssertionError(f.type)


def ctype(f):
    if f.type == "struct":
        return f.struct.cname
    if f.type in SCALARS:
        return SCALARS[f.type][0]
    return VARLEN[f.type]


def fixed_size(f):
    return SCALARS[f.type][3] if f.type in SCALARS else None


def elem_read(f, rd, dst):
    if f.type in SCALARS:
        return ["%s = %s(%s);" % (dst, SCALARS[f.type][1], rd)]
    if f.type == "string":
        return ["%s = wire_read_string(%s, flex, false);" % (dst, rd)]
    if f.type in ("bytes", "records"):
        return ["%s = wire_read_bytes(%s, flex, false);" % (dst, rd)]
    return ["%s_decode_(%s, version, a, &%s);" % (f.struct.cname, rd, dst)]


def elem_write(f, src):
    if f.type in SCALARS:
        return ["%s(w, %s);" % (SCALARS[f.type][2], src)]
    if f.type == "string":
        return ["wire_write_string(w, %s, flex, false);" % src]
    if f.type in ("bytes", "records"):
        return ["wire_write_bytes(w, %s, flex, false);" % src]
    return ["%s_encode_(w, version, &%s);" % (f.struct.cname, src)]


def elem_size(f, src):
    if f.type in SCALARS:
        return str(SCALARS[f.type][3])
    if f.type == "string":
        return "wire_string_size(%s, flex)" % src
    if f.type in ("bytes", "records"):
        return "wire_bytes_size(%s, flex)" % src
    return "%s_size_(version, &%s)" % (f.struct.cname, src)


def field_read(f, rd, acc, ctx):
    nul = cexpr(cond(f.nullable, ctx)) if f.nullable else "false"
    if f.is_array:
        es = fixed_size(f)
        lines = [
            "{",
            "    int32_t n_ = wire_read_array_len(%s, flex, %s);" % (rd, nul),
            "    %s_count = n_;" % acc,
            "    if (n_ > 0) {",
        ]
        if es is not None and es > 1:
            lines += [
                "        if ((size_t)n_ > wire_remaining(%s) / %d) {" % (rd, es),
                "            %s_count = 0;" % acc,
                "            wire_fail(%s, WIRE_ETRUNC);" % rd,
                "        } else if ((%s = arena_calloc(a, (size_t)n_, sizeof *%s)) == NULL) {" % (acc, acc),
            ]
        else:
            lines += ["        if ((%s = arena_calloc(a, (size_t)n_, sizeof *%s)) == NULL) {" % (acc, acc)]
        lines += [
            "            %s_count = 0;" % acc,
            "            wire_fail(%s, WIRE_ENOMEM);" % rd,
            "        } else {",
            "            for (int32_t i_ = 0; i_ < n_ && %s->err == WIRE_OK; i_++)" % rd,
        ]
        lines += ["                " + x for x in elem_read(f, rd, acc + "[i_]")]
        lines += ["        }", "    }", "}"]
        return lines
    if f.type == "string":
        return ["%s = wire_read_string(%s, flex, %s);" % (acc, rd, nul)]
    if f.type in ("bytes", "records"):
        return ["%s = wire_read_bytes(%s, flex, %s);" % (acc, rd, nul)]
    if f.nullable_struct:
        marker = "wire_read_i8(%s) >= 0" % rd
        return [
            "%s = %s;" % (has_acc(acc), marker if nul == "true" else "%s ? %s : true" % (nul, marker)),
            "if (%s)" % has_acc(acc),
            "    %s_decode_(%s, version, a, &%s);" % (f.struct.cname, rd, acc),
        ]
    return elem_read(f, rd, acc)


def field_write(f, acc, ctx):
    nul = cexpr(cond(f.nullable, ctx)) if f.nullable else "false"
    if f.is_array:
        lines = [
            "assert(%s_count <= 0 || %s != NULL);" % (acc, acc),
            "wire_write_array_len(w, %s_count, flex, %s);" % (acc, nul),
            "for (int32_t i_ = 0; i_ < %s_count && w->err == WIRE_OK; i_++)" % acc,
        ]
        lines += ["    " + x for x in elem_write(f, acc + "[i_]")]
        return lines
    if f.type == "string":
        return ["wire_write_string(w, %s, flex, %s);" % (acc, nul)]
    if f.type in ("bytes", "records"):
        return ["wire_write_bytes(w, %s, flex, %s);" % (acc, nul)]
    if f.nullable_struct:
        return [
            "if (%s)" % nul,
            "    wire_write_i8(w, %s ? 1 : -1);" % has_acc(acc),
            "else if (!%s)" % has_acc(acc),
            "    gen_wfail(w, WIRE_EINVAL);",
            "if (%s)" % has_acc(acc),
            "    %s_encode_(w, version, &%s);" % (f.struct.cname, acc),
        ]
    return elem_write(f, acc)


def field_size(f, acc, ctx, var):
    nul = cexpr(cond(f.nullable, ctx)) if f.nullable else "false"
    if f.is_array:
        lines = ["%s += wire_array_len_size(%s_count, flex);" % (var, acc)]
        es = fixed_size(f)
        if es is not None:
            lines += ["if (%s_count > 0)" % acc, "    %s += (size_t)%s_count * %d;" % (var, acc, es)]
        else:
            lines += [
                "for (int32_t i_ = 0; i_ < %s_count; i_++)" % acc,
                "    %s += %s;" % (var, elem_size(f, acc + "[i_]")),
            ]
        return lines
    if f.nullable_struct:
        return [
            "if (%s)" % nul,
            "    %s += 1;" % var,
            "if (%s)" % has_acc(acc),
            "    %s += %s_size_(version, &%s);" % (var, f.struct.cname, acc),
        ]
    return ["%s += %s;" % (var, elem_size(f, acc))]


def guard(c, lines, indent="    "):
    """Wraps lines in `if (c)`; c is "" (always) or an expression; None drops them."""
    if c is None:
        return []
    if c == "":
        return lines
    return ["if (%s) {" % c] + [indent + x for x in lines] + ["}"]


def untagged_range(f):
    if f.tagged is None:
        return f.versions
    if f.versions is None or f.tagged[0] <= f.versions[0]:
        return None
    return vr_intersect(f.versions, (0, f.tagged[0] - 1))


def tagged_range(f):
    if f.tagged is None:
        return None
    return vr_intersect(f.versions, f.tagged)


def flex_cond(m, ctx):
    if m.flex is None:
        return None
    return cond((m.flex[0], INF), ctx)


# ---------------------------------------------------------------------------
# Per-struct functions


def emit_struct_funcs(s):
    m = s.msg
    ctx = s.ctx
    fc = cexpr(flex_cond(m, ctx))
    tagged = sorted([f for f in s.fields if tagged_range(f) is not None], key=lambda f: f.tag)
    # Tagged sections are only coded at flexible versions: simplify against those.
    tctx = vr_intersect(ctx, (m.flex[0], INF)) if m.flex is not None else None
    out = []

    # init
    body = []
    for f in s.fields:
        body += default_init(f, "m->" + f.name)
    out.append("void %s_init(%s *m) {" % (s.cname, s.cname))
    out.append("    memset(m, 0, sizeof *m);")
    out += ["    " + x for x in body]
    out.append("}")
    out.append("")

    # is_default (used when this struct is a field that may be omitted or tagged)
    out.append("static inline bool %s_is_default_(const %s *m) {" % (s.cname, s.cname))
    if s.fields:
        conds = [nondefault(f, "m->" + f.name) for f in s.fields]
        out.append("    return !(" + (" ||\n             ".join(conds)) + ");")
    else:
        out.append("    (void)m;")
        out.append("    return true;")
    out.append("}")
    out.append("")

    # decode
    body = []
    for f in s.fields:
        body += guard(cond(untagged_range(f), ctx), field_read(f, "r", "m->" + f.name, ctx))
    tb = ["if (flex) {"]
    if tagged:
        tb += [
            "    uint32_t ntag_ = wire_read_uvarint(r);",
            "    for (uint32_t t_ = 0; t_ < ntag_ && r->err == WIRE_OK; t_++) {",
            "        uint32_t tag_ = wire_read_uvarint(r);",
            "        wire_reader sub_;",
            "        if (!gen_tag_open(r, &sub_))",
            "            break;",
            "        wire_reader *tr = &sub_;",
            "        switch (tag_) {",
        ]
        for f in tagged:
            c = cond(tagged_range(f), tctx)
            inner = field_read(f, "tr", "m->" + f.name, ctx) + ["gen_tag_close(r, tr);"]
            tb += ["        case %d:" % f.tag]
            tb += ["            " + x for x in guard(c, inner)]
            tb += ["            break;"]
        tb += [
            "        default:",
            "            break; /* unknown tags are skipped: newer peers may send them */",
            "        }",
            "    }",
        ]
    else:
        tb += ["    gen_skip_tags(r);"]
    tb += ["}"]
    if m.flex is not None and flex_cond(m, ctx) is not None:
        body += tb
    out.append("static void %s_decode_(wire_reader *r, int16_t version, arena *a, %s *m) {" % (s.cname, s.cname))
    out.append("    (void)version;")
    out.append("    (void)a;")
    out.append("    %s_init(m);" % s.cname)
    if any(re.search(r"\bflex\b", x) for x in body):
        out.append("    const bool flex = %s;" % fc)
    out += ["    " + x for x in body]
    out.append("}")
    out.append("")

    # encode
    body = []
    for f in s.fields:
        acc = "m->" + f.name
        c = cond(untagged_range(f), ctx)
        body += guard(c, field_write(f, acc, ctx))
        present = cond(f.versions, ctx)
        if present != "" and not f.ignorable:
            absent = "!" + cexpr(present) if present is not None else ""
            check = "%s && %s" % (absent, nondefault(f, acc)) if absent else nondefault(f, acc)
            body += ["if (%s)" % check, "    gen_wfail(w, WIRE_EVERSION);"]
    tb = ["if (flex) {"]
    if tagged:
        tb.append("    uint32_t ntag_ = 0;")
        tconds = []
        for f in tagged:
            c = cond(tagged_range(f), tctx)
            nd = nondefault(f, "m->" + f.name)
            tc = nd if c == "" else "%s && %s" % (cexpr(c), nd)
            tconds.append(tc)
            tb += ["    if (%s)" % tc, "        ntag_++;"]
        tb.append("    wire_write_uvarint(w, ntag_);")
        for f, tc in zip(tagged, tconds):
            acc = "m->" + f.name
            inner = ["size_t tsz_ = 0;"] + field_size(f, acc, ctx, "tsz_")
            inner += ["wire_write_uvarint(w, %d);" % f.tag, "wire_write_uvarint(w, (uint32_t)tsz_);"]
            inner += field_write(f, acc, ctx)
            tb += ["    " + x for x in guard(tc, inner)]
    else:
        tb.append("    wire_write_uvarint(w, 0);")
    tb.append("}")
    if m.flex is not None and flex_cond(m, ctx) is not None:
        body += tb
    out.append("static void %s_encode_(wire_writer *w, int16_t version, const %s *m) {" % (s.cname, s.cname))
    out.append("    (void)version;")
    out.append("    (void)m;")
    if any(re.search(r"\bflex\b", x) for x in body):
        out.append("    const bool flex = %s;" % fc)
    out += ["    " + x for x in body]
    out.append("}")
    out.append("")

    # size
    body = []
    for f in s.fields:
        body += guard(cond(untagged_range(f), ctx), field_size(f, "m->" + f.name, ctx, "n_"))
    tb = ["if (flex) {"]
    if tagged:
        tb.append("    uint32_t ntag_ = 0;")
        for f in tagged:
            c = cond(tagged_range(f), tctx)
            acc = "m->" + f.name
            nd = nondefault(f, acc)
            tc = nd if c == "" else "%s && %s" % (cexpr(c), nd)
            inner = ["size_t tsz_ = 0;"] + field_size(f, acc, ctx, "tsz_")
            inner += ["n_ += wire_uvarint_size(%d) + wire_uvarint_size(tsz_) + tsz_;" % f.tag, "ntag_++;"]
            tb += ["    " + x for x in guard(tc, inner)]
        tb.append("    n_ += wire_uvarint_size(ntag_);")
    else:
        tb.append("    n_ += 1;")
    tb.append("}")
    if m.flex is not None and flex_cond(m, ctx) is not None:
        body += tb
    out.append("static size_t %s_size_(int16_t version, const %s *m) {" % (s.cname, s.cname))
    out.append("    (void)version;")
    out.append("    (void)m;")
    out.append("    size_t n_ = 0;")
    if any(re.search(r"\bflex\b", x) for x in body):
        out.append("    const bool flex = %s;" % fc)
    out += ["    " + x for x in body]
    out.append("    return n_;")
    out.append("}")
    out.append("")
    return out


def emit_struct_typedef(s):
    out = ["typedef struct %s {" % s.cname]
    if not s.fields:
        out.append("    char unused_; /* no fields in any version */")
    for f in s.fields:
        vs = f.versions
        note = "v%d+" % vs[0] if vs and vs[1] == INF else ("v%d-%d" % vs if vs else "never")
        if f.nullable is not None:
            nv = f.nullable
            note += ", nullable v%d+" % nv[0] if nv[1] == INF else ", nullable v%d-%d" % nv
        if f.tag is not None:
            note += ", tag %d" % f.tag
        if f.default is not None:
            note += ", default %s" % f.default
        if f.is_array:
            out.append("    %s *%s; /* %s */" % (ctype(f), f.name, note))
            out.append("    int32_t %s_count; /* -1: null */" % f.name)
        else:
            if f.nullable_struct:
                out.append("    bool has_%s; /* false: null on the wire */" % f.name)
            out.append("    %s %s; /* %s */" % (ctype(f), f.name, note))
    out.append("} %s;" % s.cname)
    out.append("")
    return out


def emit_message_c(m):
    out = []
    for s in m.order:
        out.append("static void %s_decode_(wire_reader *r, int16_t version, arena *a, %s *m);" % (s.cname, s.cname))
        out.append("static void %s_encode_(wire_writer *w, int16_t version, const %s *m);" % (s.cname, s.cname))
        out.append("static size_t %s_size_(int16_t version, const %s *m);" % (s.cname, s.cname))
    out.append("")
    for s in m.order:
        out += emit_struct_funcs(s)
    lo, hi = m.valid
    c = m.cname
    out += [
        "int %s_decode(wire_reader *r, int16_t version, arena *a, %s *out) {" % (c, c),
        "    if (version < %d || version > %d)" % (lo, hi),
        "        return WIRE_EVERSION;",
        "    %s_decode_(r, version, a, out);" % c,
        "    return r->err;",
        "}",
        "",
        "int %s_encode(wire_writer *w, int16_t version, const %s *m) {" % (c, c),
        "    if (version < %d || version > %d) {" % (lo, hi),
        "        gen_wfail(w, WIRE_EVERSION);",
        "        return w->err;",
        "    }",
        "    %s_encode_(w, version, m);" % c,
        "    return w->err;",
        "}",
        "",
        "size_t %s_size(int16_t version, const %s *m) { return %s_size_(version, m); }" % (c, c, c),
        "",
    ]
    return out


# ---------------------------------------------------------------------------
# Error codes: Kafka's error code numbers and names (facts of the protocol).

ERROR_CODES = [
    (-1, "UNKNOWN_SERVER_ERROR"), (0, "NONE"), (1, "OFFSET_OUT_OF_RANGE"), (2, "CORRUPT_MESSAGE"),
    (3, "UNKNOWN_TOPIC_OR_PARTITION"), (4, "INVALID_FETCH_SIZE"), (5, "LEADER_NOT_AVAILABLE"),
    (6, "NOT_LEADER_OR_FOLLOWER"), (7, "REQUEST_TIMED_OUT"), (8, "BROKER_NOT_AVAILABLE"),
    (9, "REPLICA_NOT_AVAILABLE"), (10, "MESSAGE_TOO_LARGE"), (11, "STALE_CONTROLLER_EPOCH"),
    (12, "OFFSET_METADATA_TOO_LARGE"), (13, "NETWORK_EXCEPTION"), (14, "COORDINATOR_LOAD_IN_PROGRESS"),
    (15, "COORDINATOR_NOT_AVAILABLE"), (16, "NOT_COORDINATOR"), (17, "INVALID_TOPIC_EXCEPTION"),
    (18, "RECORD_LIST_TOO_LARGE"), (19, "NOT_ENOUGH_REPLICAS"), (20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND"),
    (21, "INVALID_REQUIRED_ACKS"), (22, "ILLEGAL_GENERATION"), (23, "INCONSISTENT_GROUP_PROTOCOL"),
    (24, "INVALID_GROUP_ID"), (25, "UNKNOWN_MEMBER_ID"), (26, "INVALID_SESSION_TIMEOUT"),
    (27, "REBALANCE_IN_PROGRESS"), (28, "INVALID_COMMIT_OFFSET_SIZE"), (29, "TOPIC_AUTHORIZATION_FAILED"),
    (30, "GROUP_AUTHORIZATION_FAILED"), (31, "CLUSTER_AUTHORIZATION_FAILED"), (32, "INVALID_TIMESTAMP"),
    (33, "UNSUPPORTED_SASL_MECHANISM"), (34, "ILLEGAL_SASL_STATE"), (35, "UNSUPPORTED_VERSION"),
    (36, "TOPIC_ALREADY_EXISTS"), (37, "INVALID_PARTITIONS"), (38, "INVALID_REPLICATION_FACTOR"),
    (39, "INVALID_REPLICA_ASSIGNMENT"), (40, "INVALID_CONFIG"), (41, "NOT_CONTROLLER"),
    (42, "INVALID_REQUEST"), (43, "UNSUPPORTED_FOR_MESSAGE_FORMAT"), (44, "POLICY_VIOLATION"),
    (45, "OUT_OF_ORDER_SEQUENCE_NUMBER"), (46, "DUPLICATE_SEQUENCE_NUMBER"), (47, "INVALID_PRODUCER_EPOCH"),
    (48, "INVALID_TXN_STATE"), (49, "INVALID_PRODUCER_ID_MAPPING"), (50, "INVALID_TRANSACTION_TIMEOUT"),
    (51, "CONCURRENT_TRANSACTIONS"), (52, "TRANSACTION_COORDINATOR_FENCED"),
    (53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"), (54, "SECURITY_DISABLED"), (55, "OPERATION_NOT_ATTEMPTED"),
    (56, "KAFKA_STORAGE_ERROR"), (57, "LOG_DIR_NOT_FOUND"), (58, "SASL_AUTHENTICATION_FAILED"),
    (59, "UNKNOWN_PRODUCER_ID"), (60, "REASSIGNMENT_IN_PROGRESS"), (61, "DELEGATION_TOKEN_AUTH_DISABLED"),
    (62, "DELEGATION_TOKEN_NOT_FOUND"), (63, "DELEGATION_TOKEN_OWNER_MISMATCH"),
    (64, "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED"), (65, "DELEGATION_TOKEN_AUTHORIZATION_FAILED"),
    (66, "DELEGATION_TOKEN_EXPIRED"), (67, "INVALID_PRINCIPAL_TYPE"), (68, "NON_EMPTY_GROUP"),
    (69, "GROUP_ID_NOT_FOUND"), (70, "FETCH_SESSION_ID_NOT_FOUND"), (71, "INVALID_FETCH_SESSION_EPOCH"),
    (72, "LISTENER_NOT_FOUND"), (73, "TOPIC_DELETION_DISABLED"), (74, "FENCED_LEADER_EPOCH"),
    (75, "UNKNOWN_LEADER_EPOCH"), (76, "UNSUPPORTED_COMPRESSION_TYPE"), (77, "STALE_BROKER_EPOCH"),
    (78, "OFFSET_NOT_AVAILABLE"), (79, "MEMBER_ID_REQUIRED"), (80, "PREFERRED_LEADER_NOT_AVAILABLE"),
    (81, "GROUP_MAX_SIZE_REACHED"), (82, "FENCED_INSTANCE_ID"), (83, "ELIGIBLE_LEADERS_NOT_AVAILABLE"),
    (84, "ELECTION_NOT_NEEDED"), (85, "NO_REASSIGNMENT_IN_PROGRESS"), (86, "GROUP_SUBSCRIBED_TO_TOPIC"),
    (87, "INVALID_RECORD"), (88, "UNSTABLE_OFFSET_COMMIT"), (89, "THROTTLING_QUOTA_EXCEEDED"),
    (90, "PRODUCER_FENCED"), (91, "RESOURCE_NOT_FOUND"), (92, "DUPLICATE_RESOURCE"),
    (93, "UNACCEPTABLE_CREDENTIAL"), (94, "INCONSISTENT_VOTER_SET"), (95, "INVALID_UPDATE_VERSION"),
    (96, "FEATURE_UPDATE_FAILED"), (97, "PRINCIPAL_DESERIALIZATION_FAILURE"), (98, "SNAPSHOT_NOT_FOUND"),
    (99, "POSITION_OUT_OF_RANGE"), (100, "UNKNOWN_TOPIC_ID"), (101, "DUPLICATE_BROKER_REGISTRATION"),
    (102, "BROKER_ID_NOT_REGISTERED"), (103, "INCONSISTENT_TOPIC_ID"), (104, "INCONSISTENT_CLUSTER_ID"),
    (105, "TRANSACTIONAL_ID_NOT_FOUND"), (106, "FETCH_SESSION_TOPIC_ID_ERROR"), (107, "INELIGIBLE_REPLICA"),
    (108, "NEW_LEADER_ELECTED"), (109, "OFFSET_MOVED_TO_TIERED_STORAGE"), (110, "FENCED_MEMBER_EPOCH"),
    (111, "UNRELEASED_INSTANCE_ID"), (112, "UNSUPPORTED_ASSIGNOR"), (113, "STALE_MEMBER_EPOCH"),
    (114, "MISMATCHED_ENDPOINT_TYPE"), (115, "UNSUPPORTED_ENDPOINT_TYPE"), (116, "UNKNOWN_CONTROLLER_ID"),
    (117, "UNKNOWN_SUBSCRIPTION_ID"), (118, "TELEMETRY_TOO_LARGE"), (119, "INVALID_REGISTRATION"),
    (120, "TRANSACTION_ABORTABLE"), (121, "INVALID_RECORD_STATE"), (122, "SHARE_SESSION_NOT_FOUND"),
    (123, "INVALID_SHARE_SESSION_EPOCH"), (124, "FENCED_STATE_EPOCH"), (125, "INVALID_VOTER_KEY"),
    (126, "DUPLICATE_VOTER"), (127, "VOTER_NOT_FOUND"), (128, "INVALID_REGULAR_EXPRESSION"),
    (129, "REBOOTSTRAP_REQUIRED"),
]

# ---------------------------------------------------------------------------
# Files

BANNER = "/* Generated by scripts/protogen.py from the Kafka message schemas. Do not edit. */\n"


def api_base(m):
    return m.name[: -len("Request")]


def emit_header(apis):
    o = [BANNER.rstrip(), "/*"]
    o += [
        " * kafka_msgs.h - C structs and codecs for every Kafka request and response",
        " * that a broker or controller listener serves (see scripts/protogen.py).",
        " *",
        " * Conventions, for every message kafka_<name>_{request,response}:",
        " *   - strings are kstr, bytes and records are kbytes (len -1 = null), uuid is",
        " *     kuuid; arrays are a pointer plus <field>_count (-1 = null array);",
        " *     nested structs are members by value; a nullable struct has has_<field>.",
        " *   - _init() sets every field to its schema default (call it before filling).",
        " *   - _decode() reads one message body at `version`; it starts with _init(),",
        " *     so fields absent at that version hold their defaults. Arrays come from",
        " *     the arena; strings and bytes point into the reader's buffer. Returns a",
        " *     wire_err (0 = ok). Trailing bytes are left in the reader for the caller.",
        " *   - _encode() writes the body; a field that does not exist at `version` but",
        " *     holds a non-default value is WIRE_EVERSION unless the schema marks it",
        " *     ignorable. Tagged fields are written only when not default.",
        " *   - _size() is the exact number of bytes _encode() writes.",
        " *   - versions outside the message's valid range are WIRE_EVERSION.",
        " */",
        "#ifndef SLUICE_PROTO_GEN_KAFKA_MSGS_H",
        "#define SLUICE_PROTO_GEN_KAFKA_MSGS_H",
        "",
        "#include <stdbool.h>",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        "#include \"core/arena.h\"",
        "#include \"proto/wire.h\"",
        "",
        "/* API keys served by broker or controller listeners. */",
        "typedef enum kafka_api_key {",
    ]
    for req, _ in apis:
        o.append("    KAFKA_API_%s = %d," % (snake(api_base(req)).upper(), req.key))
    o += ["} kafka_api_key;", "", "#define KAFKA_API_MAX_KEY %d" % max(r.key for r, _ in apis), ""]
    o += ["/* Kafka error codes. */", "typedef enum kafka_error {"]
    for num, name in ERROR_CODES:
        o.append("    KAFKA_ERR_%s = %d," % (name, num))
    o += [
        "} kafka_error;",
        "",
        "/* The upper-case name of an error code (\"UNSUPPORTED_VERSION\"), or NULL if unknown. */",
        "const char *kafka_error_name(int code);",
        "",
        "/* Type-erased view of one API so a dispatcher can decode any request. */",
        "typedef struct kafka_api_info {",
        "    int16_t key;",
        "    const char *name; /* e.g. \"Fetch\" */",
        "    int16_t min_version, max_version;",
        "    int16_t flexible_min; /* -1 if never flexible */",
        "    bool broker, controller; /* listeners that serve it */",
        "    bool latest_unstable;    /* max_version is not yet a stable release */",
        "    size_t request_struct_size;",
        "    void (*request_init)(void *m);",
        "    int (*request_decode)(wire_reader *r, int16_t version, arena *a, void *out);",
        "    int (*request_encode)(wire_writer *w, int16_t version, const void *m);",
        "    size_t (*request_size)(int16_t version, const void *m);",
        "    size_t response_struct_size;",
        "    void (*response_init)(void *m);",
        "    int (*response_decode)(wire_reader *r, int16_t version, arena *a, void *out);",
        "    int (*response_encode)(wire_writer *w, int16_t version, const void *m);",
        "    size_t (*response_size)(int16_t version, const void *m);",
        "} kafka_api_info;",
        "",
        "/* The API with this key, or NULL if Sluice does not know it. */",
        "const kafka_api_info *kafka_api_lookup(int16_t key);",
        "",
    ]
    for req, resp in apis:
        for m in (req, resp):
            o.append("/* ---- %s (api key %d, v%d-%d%s) ---- */" % (
                m.name, m.key, m.valid[0], m.valid[1],
                ", flexible v%d+" % m.flex[0] if m.flex else ""))
            o.append("")
            for s in m.order:
                o += emit_struct_typedef(s)
            for s in m.order:
                o.append("void %s_init(%s *m);" % (s.cname, s.cname))
            c = m.cname
            o.append("int %s_decode(wire_reader *r, int16_t version, arena *a, %s *out);" % (c, c))
            o.append("int %s_encode(wire_writer *w, int16_t version, const %s *m);" % (c, c))
            o.append("size_t %s_size(int16_t version, const %s *m);" % (c, c))
            o.append("")
    o += ["#endif"]
    return "\n".join(o) + "\n"


INTERNAL_H = BANNER + """/*
 * kafka_gen_internal.h - helpers shared by the generated codecs only.
 */
#ifndef SLUICE_PROTO_GEN_INTERNAL_H
#define SLUICE_PROTO_GEN_INTERNAL_H

#include <assert.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"

/* Records err on a writer unless one is already recorded. */
static inline void gen_wfail(wire_writer *w, int err) {
    if (w->err == WIRE_OK)
        w->err = err;
}

/* Reads a tagged field's size and carves its bytes out as a sub-reader, so a
 * known field must fit its declared size exactly and an unknown one is skipped. */
static inline bool gen_tag_open(wire_reader *r, wire_reader *sub) {
    uint32_t len = wire_read_uvarint(r);
    const uint8_t *p = wire_skip(r, len);
    if (p == NULL)
        return false;
    wire_reader_init(sub, p, len);
    return true;
}

/* A known tagged field must decode cleanly and use all of its bytes. */
static inline void gen_tag_close(wire_reader *r, wire_reader *sub) {
    if (sub->err != WIRE_OK)
        wire_fail(r, sub->err);
    else if (wire_remaining(sub) != 0)
        wire_fail(r, WIRE_EINVAL);
}

/* Skips a whole tagged-field section (no known tags in this struct). */
static inline void gen_skip_tags(wire_reader *r) {
    uint32_t n = wire_read_uvarint(r);
    for (uint32_t i = 0; i < n && r->err == WIRE_OK; i++) {
        wire_reader sub;
        (void)wire_read_uvarint(r);
        if (!gen_tag_open(r, &sub))
            break;
    }
}

#endif
"""


def emit_api_c(req, resp):
    o = [BANNER.rstrip(), "/* Codecs for the %s API (key %d). */" % (api_base(req), req.key)]
    o += ['#include "proto/gen/kafka_gen_internal.h"', ""]
    o += emit_message_c(req)
    o += emit_message_c(resp)
    while o and o[-1] == "":
        o.pop()
    return drop_unused_is_default("\n".join(o) + "\n")


def drop_unused_is_default(text):
    """Removes *_is_default_ helpers nothing calls (clang warns about them)."""
    while True:
        changed = False
        for name in re.findall(r"^static inline bool (\w+_is_default_)\(", text, re.M):
            if len(re.findall(r"\b%s\(" % name, text)) == 1:
                start = text.index("static inline bool %s(" % name)
                end = text.index("\n}\n", start) + 3
                if text[end : end + 1] == "\n":
                    end += 1
                text = text[:start] + text[end:]
                changed = True
        if not changed:
            return text


def emit_api_table(apis):
    o = [BANNER.rstrip(), "/* The API table: one type-erased entry per API key. */"]
    o += ['#include "proto/gen/kafka_gen_internal.h"', ""]
    for req, resp in apis:
        for m, tag in ((req, "req"), (resp, "resp")):
            b = "%s_%d" % (tag, m.key)
            c = m.cname
            o += [
                "static void %s_init(void *m) { %s_init(m); }" % (b, c),
                "static int %s_decode(wire_reader *r, int16_t v, arena *a, void *out) {" % b,
                "    return %s_decode(r, v, a, out);" % c,
                "}",
                "static int %s_encode(wire_writer *w, int16_t v, const void *m) { return %s_encode(w, v, m); }"
                % (b, c),
                "static size_t %s_size(int16_t v, const void *m) { return %s_size(v, m); }" % (b, c),
            ]
    o += ["", "static const kafka_api_info apis[KAFKA_API_MAX_KEY + 1] = {"]
    for req, resp in apis:
        lst = req.listeners
        o.append(
            "    [%d] = {%d, \"%s\", %d, %d, %d, %s, %s, %s," % (
                req.key, req.key, api_base(req), req.valid[0], req.valid[1],
                req.flex[0] if req.flex else -1,
                "true" if "broker" in lst else "false",
                "true" if "controller" in lst else "false",
                "true" if req.unstable else "false"))
        o.append("           sizeof(%s), req_%d_init, req_%d_decode, req_%d_encode, req_%d_size," % (
            req.cname, req.key, req.key, req.key, req.key))
        o.append("           sizeof(%s), resp_%d_init, resp_%d_decode, resp_%d_encode, resp_%d_size}," % (
            resp.cname, resp.key, resp.key, resp.key, resp.key))
    o += [
        "};",
        "",
        "const kafka_api_info *kafka_api_lookup(int16_t key) {",
        "    if (key < 0 || key > KAFKA_API_MAX_KEY || apis[key].name == NULL)",
        "        return NULL;",
        "    return &apis[key];",
        "}",
    ]
    return "\n".join(o) + "\n"


def emit_errors_c():
    o = [BANNER.rstrip(), "/* Names of Kafka error codes. */", '#include "proto/gen/kafka_msgs.h"', ""]
    o += ["const char *kafka_error_name(int code) {", "    switch (code) {"]
    for num, name in ERROR_CODES:
        o += ["    case %d:" % num, "        return \"%s\";" % name]
    o += ["    }", "    return NULL;", "}"]
    return "\n".join(o) + "\n"


# ---------------------------------------------------------------------------
# Roundtrip test support: fill every field of a message with seeded random data.


def fill_field(f, acc, ctx):
    nul = cexpr(cond(f.nullable, ctx)) if f.nullable else "false"

    def elem(dst):
        if f.type in ("int8", "int16", "int32", "int64", "uint16", "uint32"):
            return ["%s = (%s)fill_u64(c);" % (dst, SCALARS[f.type][0])]
        if f.type == "bool":
            return ["%s = fill_coin(c);" % dst]
        if f.type == "float64":
            return ["%s = (double)(int32_t)fill_u64(c) / 8.0;" % dst]
        if f.type == "uuid":
            return ["%s = fill_uuid(c);" % dst]
        if f.type == "string":
            return ["%s = fill_str(c, false);" % dst]
        if f.type in ("bytes", "records"):
            return ["%s = fill_bytes(c, false);" % dst]
        return ["fill_%s(c, version, &%s);" % (f.struct.cname, dst)]

    if f.is_array:
        return [
            "%s_count = fill_count(c, %s);" % (acc, nul),
            "if (%s_count > 0) {" % acc,
            "    %s = fill_alloc(c, (size_t)%s_count * sizeof *%s);" % (acc, acc, acc),
            "    for (int32_t i_ = 0; i_ < %s_count; i_++) {" % acc,
        ] + ["        " + x for x in elem(acc + "[i_]")] + ["    }", "}"]
    if f.type == "string":
        return ["%s = fill_str(c, %s);" % (acc, nul)]
    if f.type in ("bytes", "records"):
        return ["%s = fill_bytes(c, %s);" % (acc, nul)]
    if f.nullable_struct:
        return [
            "%s = %s ? fill_coin(c) : true;" % (has_acc(acc), nul),
            "if (%s)" % has_acc(acc),
            "    fill_%s(c, version, &%s);" % (f.struct.cname, acc),
        ]
    return elem(acc)


def emit_fill(apis):
    o = [BANNER.rstrip(), "/*"]
    o += [
        " * roundtrip_fill.c - seeded pseudo-random fillers for every generated message,",
        " * included by tests/unit/test_proto_roundtrip.c, which defines fill_ctx and the",
        " * fill_* primitives. Each filler sets exactly the fields that exist at the",
        " * given version; tagged fields are left at their default half of the time.",
        " */",
        "",
    ]
    for req, resp in apis:
        for m in (req, resp):
            for s in m.order:
                o.append("static void fill_%s(fill_ctx *c, int16_t version, %s *m);" % (s.cname, s.cname))
    o.append("")
    for req, resp in apis:
        for m in (req, resp):
            for s in m.order:
                o.append("static void fill_%s(fill_ctx *c, int16_t version, %s *m) {" % (s.cname, s.cname))
                o.append("    (void)c;")
                o.append("    (void)version;")
                o.append("    %s_init(m);" % s.cname)
                for f in s.fields:
                    c = cond(f.versions, s.ctx)
                    if c is None:
                        continue
                    body = fill_field(f, "m->" + f.name, s.ctx)
                    if f.tag is not None:
                        c = "fill_coin(c)" if c == "" else "%s && fill_coin(c)" % cexpr(c)
                    o += ["    " + x for x in guard(c, body)]
                o.append("}")
                o.append("")
            o.append("static void fill_any_%s(fill_ctx *c, int16_t version, void *m) { fill_%s(c, version, m); }"
                     % (m.cname, m.cname))
            o.append("")
    o.append("static const fill_entry fill_table[] = {")
    for req, resp in apis:
        o.append("    {%d, fill_any_%s, fill_any_%s}," % (req.key, req.cname, resp.cname))
    o.append("};")
    return "\n".join(o) + "\n"


# ---------------------------------------------------------------------------
# Internal records (../records/<folder>/*.json and the messages folder's
# "data" schemas): the same struct codecs as messages, without an API table.
# Metadata records (type "metadata") also get a table indexed by their apiKey,
# the record type of the __cluster_metadata frame.


def load_records(spec):
    """[(folder, Message)] sorted by folder then name."""
    out = []
    rdir = os.path.join(os.path.dirname(os.path.abspath(spec)), "records")
    if os.path.isdir(rdir):
        for folder in sorted(os.listdir(rdir)):
            d = os.path.join(rdir, folder)
            if not os.path.isdir(d):
                continue
            for fn in sorted(x for x in os.listdir(d) if x.endswith(".json")):
                js = load_message(os.path.join(d, fn))
                out.append((folder, build_message(js)))
    for fn in sorted(x for x in os.listdir(spec) if x.endswith(".json")):
        js = load_message(os.path.join(spec, fn))
        if js.get("type") == "data":
            out.append(("data", build_message(js)))
    names = [m.cname for _, m in out]
    if len(set(names)) != len(names):
        raise SystemExit("record names clash")
    return out


def emit_records_header(recs):
    o = [BANNER.rstrip(), "/*"]
    o += [
        " * kafka_records.h - C structs and codecs for Kafka's internal records: the",
        " * KRaft metadata records of __cluster_metadata, Raft's control records and",
        " * quorum state, and the coordinators' record keys and values",
        " * (see scripts/protogen.py). Same conventions as kafka_msgs.h: _init,",
        " * _decode, _encode, _size per record, `version` being the record's own",
        " * schema version (for metadata records, the frame's version field).",
        " */",
        "#ifndef SLUICE_PROTO_GEN_KAFKA_RECORDS_H",
        "#define SLUICE_PROTO_GEN_KAFKA_RECORDS_H",
        "",
        "#include \"proto/gen/kafka_msgs.h\"",
        "",
        "/* Metadata record types: the apiKey of each schema in records/metadata. */",
        "typedef enum kafka_metadata_record_type {",
    ]
    meta = sorted([m for f, m in recs if m.kind == "metadata"], key=lambda m: m.key)
    for m in meta:
        o.append("    KAFKA_MREC_%s = %d," % (snake(m.name[: -len("Record")] if m.name.endswith("Record") else m.name).upper(), m.key))
    o += ["} kafka_metadata_record_type;", "", "#define KAFKA_MREC_MAX_TYPE %d" % max(m.key for m in meta), ""]
    o += [
        "/* Type-erased view of one record schema. */",
        "typedef struct kafka_record_info {",
        "    const char *name;   /* e.g. \"TopicRecord\" */",
        "    const char *folder; /* \"metadata\", \"group\", \"raft\", \"share\", \"transaction\", \"data\" */",
        "    int16_t type;       /* metadata records: the record type; others -1 */",
        "    int16_t min_version, max_version;",
        "    int16_t flexible_min; /* -1 if never flexible */",
        "    size_t struct_size;",
        "    void (*init)(void *m);",
        "    int (*decode)(wire_reader *r, int16_t version, arena *a, void *out);",
        "    int (*encode)(wire_writer *w, int16_t version, const void *m);",
        "    size_t (*size)(int16_t version, const void *m);",
        "} kafka_record_info;",
        "",
        "/* Every record schema, in folder then name order. */",
        "extern const kafka_record_info kafka_records[];",
        "extern const int kafka_records_count;",
        "/* The metadata record of this type, or NULL. */",
        "const kafka_record_info *kafka_metadata_record_lookup(int16_t type);",
        "",
    ]
    for folder, m in recs:
        o.append("/* ---- %s (%s%s, v%d-%d%s) ---- */" % (
            m.name, folder, ", type %d" % m.key if m.key is not None else "", m.valid[0], m.valid[1],
            ", flexible v%d+" % m.flex[0] if m.flex else ""))
        o.append("")
        for s in m.order:
            o += emit_struct_typedef(s)
        for s in m.order:
            o.append("void %s_init(%s *m);" % (s.cname, s.cname))
        c = m.cname
        o.append("int %s_decode(wire_reader *r, int16_t version, arena *a, %s *out);" % (c, c))
        o.append("int %s_encode(wire_writer *w, int16_t version, const %s *m);" % (c, c))
        o.append("size_t %s_size(int16_t version, const %s *m);" % (c, c))
        o.append("")
    o += ["#endif"]
    return "\n".join(o) + "\n"


def emit_records_c(folder, msgs):
    o = [BANNER.rstrip(), "/* Codecs for the %s records. */" % folder]
    o += ['#include "proto/gen/kafka_gen_internal.h"', '#include "proto/gen/kafka_records.h"', ""]
    for m in msgs:
        o += emit_message_c(m)
    while o and o[-1] == "":
        o.pop()
    return drop_unused_is_default("\n".join(o) + "\n")


def emit_records_table(recs):
    o = [BANNER.rstrip(), "/* The record table: one type-erased entry per record schema. */"]
    o += ['#include "proto/gen/kafka_gen_internal.h"', '#include "proto/gen/kafka_records.h"', ""]
    for i, (_, m) in enumerate(recs):
        b = "rec_%d" % i
        c = m.cname
        o += [
            "static void %s_init(void *m) { %s_init(m); }" % (b, c),
            "static int %s_decode(wire_reader *r, int16_t v, arena *a, void *out) {" % b,
            "    return %s_decode(r, v, a, out);" % c,
            "}",
            "static int %s_encode(wire_writer *w, int16_t v, const void *m) { return %s_encode(w, v, m); }" % (b, c),
            "static size_t %s_size(int16_t v, const void *m) { return %s_size(v, m); }" % (b, c),
        ]
    o += ["", "const kafka_record_info kafka_records[] = {"]
    for i, (folder, m) in enumerate(recs):
        o.append("    {\"%s\", \"%s\", %d, %d, %d, %d, sizeof(%s), rec_%d_init, rec_%d_decode, rec_%d_encode, rec_%d_size}," % (
            m.name, folder, m.key if m.kind == "metadata" else -1, m.valid[0], m.valid[1],
            m.flex[0] if m.flex else -1, m.cname, i, i, i, i))
    o += ["};", "", "const int kafka_records_count = %d;" % len(recs), ""]
    meta = {m.key: i for i, (_, m) in enumerate(recs) if m.kind == "metadata"}
    top = max(meta)
    o += ["static const int16_t metadata_index[%d] = {" % (top + 1)]
    o.append("    " + ", ".join(str(meta.get(k, -1)) for k in range(top + 1)) + ",")
    o += [
        "};",
        "",
        "const kafka_record_info *kafka_metadata_record_lookup(int16_t type) {",
        "    if (type < 0 || type > %d || metadata_index[type] < 0)" % top,
        "        return NULL;",
        "    return &kafka_records[metadata_index[type]];",
        "}",
    ]
    return "\n".join(o) + "\n"


def emit_records_fill(recs):
    o = [BANNER.rstrip(), "/*"]
    o += [
        " * records_fill.c - seeded pseudo-random fillers for every internal record,",
        " * included by tests/unit/test_proto_roundtrip.c after roundtrip_fill.c.",
        " * record_fill_table[i] fills kafka_records[i].",
        " */",
        "",
    ]
    for _, m in recs:
        for s in m.order:
            o.append("static void fill_%s(fill_ctx *c, int16_t version, %s *m);" % (s.cname, s.cname))
    o.append("")
    for _, m in recs:
        for s in m.order:
            o.append("static void fill_%s(fill_ctx *c, int16_t version, %s *m) {" % (s.cname, s.cname))
            o.append("    (void)c;")
            o.append("    (void)version;")
            o.append("    %s_init(m);" % s.cname)
            for f in s.fields:
                cnd = cond(f.versions, s.ctx)
                if cnd is None:
                    continue
                body = fill_field(f, "m->" + f.name, s.ctx)
                if f.tag is not None:
                    cnd = "fill_coin(c)" if cnd == "" else "%s && fill_coin(c)" % cexpr(cnd)
                o += ["    " + x for x in guard(cnd, body)]
            o.append("}")
            o.append("")
        o.append("static void fill_any_%s(fill_ctx *c, int16_t version, void *m) { fill_%s(c, version, m); }"
                 % (m.cname, m.cname))
        o.append("")
    o.append("static void (*const record_fill_table[])(fill_ctx *c, int16_t version, void *m) = {")
    for _, m in recs:
        o.append("    fill_any_%s," % m.cname)
    o.append("};")
    return "\n".join(o) + "\n"


def write_if_changed(path, text, written):
    written.add(os.path.abspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def main(argv):
    spec = DEFAULT_SPEC
    if len(argv) > 2 and argv[1] == "--spec":
        spec = argv[2]
    files = sorted(x for x in os.listdir(spec) if x.endswith(".json"))
    overlay = os.path.join(ROOT, "src", "proto", "schema")
    reqs, resps = {}, {}
    for fn in files:
        # The project's overlay replaces a shared schema of the same name
        # (newer protocol versions than the shared set: see its README).
        path = os.path.join(overlay, fn)
        js = load_message(path if os.path.exists(path) else os.path.join(spec, fn))
        if js.get("type") == "request":
            reqs[js["apiKey"]] = js
        elif js.get("type") == "response":
            resps[js["apiKey"]] = js
    apis = []
    for key in sorted(reqs):
        lst = reqs[key].get("listeners", [])
        if "broker" not in lst and "controller" not in lst:
            continue
        req = build_message(reqs[key])
        resp = build_message(resps[key])
        resp.listeners = req.listeners
        if req.valid != resp.valid:
            raise SystemExit("%s: request and response version ranges differ" % req.name)
        apis.append((req, resp))

    gen_dir = os.path.join(ROOT, "src", "proto", "gen")
    written = set()
    write_if_changed(os.path.join(gen_dir, "kafka_msgs.h"), emit_header(apis), written)
    write_if_changed(os.path.join(gen_dir, "kafka_gen_internal.h"), INTERNAL_H, written)
    for req, resp in apis:
        write_if_changed(os.path.join(gen_dir, "api_%s.c" % snake(api_base(req))), emit_api_c(req, resp), written)
    write_if_changed(os.path.join(gen_dir, "kafka_api.c"), emit_api_table(apis), written)
    write_if_changed(os.path.join(gen_dir, "kafka_errors.c"), emit_errors_c(), written)
    recs = load_records(spec)
    write_if_changed(os.path.join(gen_dir, "kafka_records.h"), emit_records_header(recs), written)
    write_if_changed(os.path.join(gen_dir, "kafka_records.c"), emit_records_table(recs), written)
    for folder in sorted(set(f for f, _ in recs)):
        msgs = [m for f, m in recs if f == folder]
        write_if_changed(os.path.join(gen_dir, "records_%s.c" % folder), emit_records_c(folder, msgs), written)
    for fn in os.listdir(gen_dir):  # drop files of APIs that no longer exist
        p = os.path.abspath(os.path.join(gen_dir, fn))
        if p not in written and (fn.endswith(".c") or fn.endswith(".h")):
            os.remove(p)
    write_if_changed(os.path.join(ROOT, "tests", "unit", "gen", "roundtrip_fill.c"), emit_fill(apis), written)
    write_if_changed(os.path.join(ROOT, "tests", "unit", "gen", "records_fill.c"), emit_records_fill(recs), written)
    nmsg = sum(2 for _ in apis)
    nver = sum(2 * (r.valid[1] - r.valid[0] + 1) for r, _ in apis)
    print("protogen: %d APIs, %d messages, %d message versions; %d record schemas" % (
        len(apis), nmsg, nver, len(recs)))


if __name__ == "__main__":
    main(sys.argv)
