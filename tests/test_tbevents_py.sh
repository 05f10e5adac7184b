#!/bin/bash
# test_tbevents_py.sh - TensorBoard event files checked by an independent reader:
# test_tbevents (DX_TB_OUT=DIR) writes a known file; the Python below parses
# the TFRecord framing, recomputes the masked CRC32C with a bitwise
# implementation, decodes Event/Summary/Value with a hand protobuf parser and
# checks every field. (python3-tensorboard is not packaged in Debian 12.)
set -euo pipefail
BIN="${DINOX_BINARY_DIR:?}/test_tbevents"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
DX_TB_OUT="$TMP" "$BIN"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" - "$TMP"/events.out.tfevents.* <<'PYEOF'
import struct, sys

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def mask(c):
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

def varint(b, i):
    v = s = 0
    while True:
        x = b[i]; i += 1
        v |= (x & 0x7F) << s; s += 7
        if not x & 0x80:
            return v, i

def fields(b):
    i, out = 0, []
    while i < len(b):
        key, i = varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v = b[i:i + 8]; i += 8
        elif wt == 5:
            v = b[i:i + 4]; i += 4
        elif wt == 2:
            n, i = varint(b, i); v = b[i:i + n]; i += n
        else:
            raise SystemExit("bad wire type %d" % wt)
        out.append((f, wt, v))
    return out

path = sys.argv[1]
data = open(path, "rb").read()
recs, i = [], 0
while i < len(data):
    hdr = data[i:i + 8]
    (n,) = struct.unpack("<Q", hdr)
    (hc,) = struct.unpack("<I", data[i + 8:i + 12])
    assert hc == mask(crc32c(hdr)), "length crc"
    payload = data[i + 12:i + 12 + n]
    (dc,) = struct.unpack("<I", data[i + 12 + n:i + 16 + n])
    assert dc == mask(crc32c(payload)), "data crc"
    recs.append(payload)
    i += 16 + n
assert i == len(data)
assert len(recs) == 11, len(recs)
first = {f: v for f, _, v in fields(recs[0])}
assert first[3] == b"brain.Event:2", first
for k, r in enumerate(recs[1:]):
    ev = fields(r)
    d = {f: v for f, _, v in ev}
    assert struct.unpack("<d", d[1])[0] == 1.7e9 + k
    assert d[2] == 10 * k
    vals = {}
    for f, wt, v in fields(d[5]):
        assert f == 1 and wt == 2
        vd = {ff: vv for ff, _, vv in fields(v)}
        vals[vd[1].decode()] = struct.unpack("<f", vd[2])[0]
    assert set(vals) == {"loss/total", "lr"}, vals  # the NaN value is skipped
    assert abs(vals["loss/total"] - 1.0 / (k + 1)) < 1e-7
    assert abs(vals["lr"] - k * 1e-4) < 1e-9
print("event file OK: %d records, CRCs and fields verified" % len(recs))
PYEOF
