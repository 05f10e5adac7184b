#!/usr/bin/env bash
# test_formats_peer.sh - safetensors and .npy files cross-checked against
# independent peers: numpy (np.load / np.save / format.write_array) and a
# python safetensors reader/writer written here with struct + json (there is
# no safetensors package on the machine), with torch for bf16/f16 values.
#
#   C writes  -> python checks layout, key order and every value (bitwise)
#   python writes -> C reads (test_safetensors/test_npy --peer-read) and
#                    compares with raw reference bytes python wrote
set -euo pipefail
PY=/usr/bin/python3
B=${DINOX_BINARY_DIR:?DINOX_BINARY_DIR not set}
W=$(mktemp -d "${TMPDIR:-/tmp}/dinox_formats_peer.XXXXXX")
trap 'rm -rf "$W"' EXIT

"$B/test_safetensors" --peer-write "$W"
"$B/test_npy" --peer-write "$W"

"$PY" - "$W" <<'EOF'
import io, json, struct, sys
import numpy as np
import torch

W = sys.argv[1]
fails = 0
def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print("FAIL (python):", what)

# ---- C safetensors -> python reader --------------------------------------
b = open(f"{W}/c.safetensors", "rb").read()
n, = struct.unpack("<Q", b[:8])
check(n % 8 == 0, f"header length {n} is a multiple of 8")
text = b[8:8 + n].decode("utf-8")
check(text.rstrip(" ") == text.rstrip(" ").rstrip() and text.rstrip(" ").endswith("}"), "header padded with spaces only")
pairs = json.loads(text, object_pairs_hook=lambda kv: kv)
keys = [k for k, _ in pairs]
check(keys[0] == "__metadata__" and keys[1:] == sorted(keys[1:]), f"key order {keys}")
hdr = json.loads(text)
meta = hdr.pop("__metadata__")
check(meta == {"format": "pt", "dinox": "1"}, f"metadata {meta}")
data = b[8 + n:]
given = ["b.f32", "a.bf16", "c.f16", "d.i64", "e.u8", "s"]
pos = 0
for name in given:
    s, e = hdr[name]["data_offsets"]
    check(s == pos, f"{name} starts at {s}, previous ended at {pos} (given order, no gaps)")
    pos = e
check(pos == len(data), "data section ends with the last tensor")
def tensor(name):
    h = dict(hdr[name])
    s, e = h["data_offsets"]
    return h["dtype"], h["shape"], data[s:e]
dt, sh, raw = tensor("b.f32")
want = np.array([((i * 7919) % 1000 - 500) / 64.0 for i in range(15)], np.float32).reshape(3, 5)
check(dt == "F32" and sh == [3, 5] and np.frombuffer(raw, "<f4").reshape(3, 5).tobytes() == want.tobytes(), "b.f32")
allbits = np.arange(65536, dtype="<u2")
dt, sh, raw = tensor("a.bf16")
check(dt == "BF16" and sh == [65536] and raw == allbits.tobytes(), "a.bf16 bytes")
dt, sh, raw = tensor("c.f16")
check(dt == "F16" and sh == [256, 256] and raw == allbits.tobytes(), "c.f16 bytes")
dt, sh, raw = tensor("d.i64")
check(dt == "I64" and sh == [4] and np.frombuffer(raw, "<i8").tolist() == [-1, 0, 1, -2**63], "d.i64")
dt, sh, raw = tensor("e.u8")
check(dt == "U8" and sh == [2, 3] and list(raw) == [0, 1, 2, 127, 128, 255], "e.u8")
dt, sh, raw = tensor("s")
check(dt == "F64" and sh == [] and np.frombuffer(raw, "<f8")[0] == 0.1, "scalar s")

# ---- C f16/bf16 -> f32 tables vs numpy / torch ---------------------------
def same_bits(got, ref, what):
    g, r = got.view(np.uint32), ref.view(np.uint32)
    nan = np.isnan(ref)
    ok = np.array_equal(g[~nan], r[~nan]) and np.all(np.isnan(got[nan])) and \
        np.array_equal(np.signbit(got[nan]), np.signbit(ref[nan]))
    check(ok, f"{what}: {int(np.sum(g[~nan] != r[~nan]))} of {len(g)} differ")
c16 = np.load(f"{W}/c_f16_as_f32.npy")
same_bits(c16, allbits.view(np.float16).astype(np.float32), "f16 -> f32 vs numpy (all 65536)")
cb16 = np.load(f"{W}/c_bf16_as_f32.npy")
tb = torch.from_numpy(allbits.view(np.int16).copy()).view(torch.bfloat16).float().numpy()
same_bits(cb16, tb, "bf16 -> f32 vs torch (all 65536)")

# ---- C .npy -> numpy ------------------------------------------------------
pat = lambda i: ((i * 7919) % 1000 - 500) / 64.0
expect = {
    "c_f4": np.array([pat(i) for i in range(15)], np.float32).reshape(3, 5),
    "c_f8": np.array([pat(i) * 1e-3 for i in range(7)], np.float64),
    "c_i2": np.array([i * 10000 - 30000 for i in range(6)], np.int16).reshape(2, 3),
    "c_u1": np.array([i * 51 for i in range(6)], np.uint8).reshape(1, 2, 3),
    "c_empty": np.zeros((0, 3), np.float32),
    "c_scalar": np.array(0.5),
    "c_i4": np.array([-2**31, -1, 0, 2**31 - 1], np.int32),
}
for name, ref in expect.items():
    raw = open(f"{W}/{name}.npy", "rb").read()
    a = np.load(io.BytesIO(raw))
    check(a.dtype == ref.dtype and a.shape == ref.shape and a.tobytes() == ref.tobytes(), f"{name} values")
    bio = io.BytesIO()
    np.save(bio, ref)
    check(bio.getvalue() == raw, f"{name}: file byte-identical to np.save")

# ---- python writes safetensors (unsorted keys, unpadded header) -----------
g = torch.Generator().manual_seed(0)
ts = {
    "w.u8": torch.tensor([[0, 7], [200, 255]], dtype=torch.uint8),
    "w.f32": torch.randn(4, 6, generator=g),
    "w.bf16": (torch.randn(10, generator=g) * 100).bfloat16(),
    "w.f16": torch.tensor([0.0, -0.0, 6e-8, 65504, float("inf"), -float("inf"), 1 / 3, 1e-5, -2.5]).half().reshape(3, 3),
    "w.f64": torch.tensor([0.1, 1e300, -1e-320, 2.0 ** -149], dtype=torch.float64),
    "w.i64": torch.tensor([-3, 0, 2**62], dtype=torch.int64),
    "blocks.0.attn.qkv.weight": torch.randn(12, 4, generator=g),
}
names = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.float64: "F64",
         torch.int64: "I64", torch.uint8: "U8"}
def tbytes(t):
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().tobytes()
    return t.contiguous().numpy().tobytes()
header, blob = {"__metadata__": {"source": "python"}}, b""
for name in reversed(list(ts)):          # data order != header order
    t = ts[name]
    bb = tbytes(t)
    header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [len(blob), len(blob) + len(bb)]}
    blob += bb
h = json.dumps(dict(sorted(header.items(), key=lambda kv: kv[0][::-1])), separators=(",", ":")).encode()
if (8 + len(h)) % 8 == 0:
    h += b"\n"                           # keep the data section unaligned
open(f"{W}/py.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + blob)
with open(f"{W}/py_manifest.txt", "w") as m:
    for name, t in ts.items():
        ref = t.numpy().tobytes() if t.dtype in (torch.int64, torch.uint8) else t.float().numpy().tobytes()
        open(f"{W}/py_{name}.ref", "wb").write(ref)
        m.write(f"{name} {names[t.dtype]} {t.dim()}\n")

# ---- numpy writes .npy (all three format versions) ------------------------
rng = np.random.default_rng(7)
arrs = {
    "n_f4": rng.standard_normal((2, 3, 4)).astype(np.float32),
    "n_f8": np.array([0.1, 1e300, -1e-320, 1 / 3, 2.0 ** 24 + 1]),
    "n_big": rng.standard_normal((300, 257)),
    "n_i2": np.array([[-32768, 32767], [0, -1], [12345, -5]], np.int16),
    "n_i4": np.array([2**24 + 1, -2**31, 2**31 - 1, 7], np.int32),
    "n_u1": np.arange(8, dtype=np.uint8).reshape(2, 2, 2) * 36,
    "n_i1": np.array([-128, -1, 0, 1, 127], np.int8),
    "n_scalar": np.array(3.5, np.float32),
    "n_empty": np.zeros((0, 7), np.float32),
    "n_bool": np.array([True, False, True]),
    "n_i8": np.array([-2**63, 5], np.int64),
    "n_f2": np.array([1, 6e-8, 65504, -0.0], np.float16),
    "n_v2": np.arange(6, dtype=np.float32).reshape(3, 2),
    "n_v3": np.arange(5, dtype=np.float64) / 3,
}
convertible = {"<f4", "<f8", "<i2", "<i4", "|u1", "|i1"}
with open(f"{W}/npy_manifest.txt", "w") as m:
    for name, a in arrs.items():
        with open(f"{W}/{name}.npy", "wb") as f:
            if name == "n_v2":
                np.lib.format.write_array(f, a, version=(2, 0))
            elif name == "n_v3":
                np.lib.format.write_array(f, a, version=(3, 0))
            else:
                np.save(f, a)
        open(f"{W}/{name}.raw", "wb").write(a.tobytes())
        if a.dtype.str in convertible:
            with np.errstate(over="ignore"):
                open(f"{W}/{name}.f32", "wb").write(a.astype(np.float32).tobytes())
        m.write(f"{name} {a.dtype.str} {a.ndim} {' '.join(str(d) for d in a.shape)}\n")
for name, ver in (("n_v2", 2), ("n_v3", 3)):
    check(open(f"{W}/{name}.npy", "rb").read(7)[6] == ver, f"{name} has format version {ver}")

print(f"python side: {'ok' if fails == 0 else str(fails) + ' failures'}")
sys.exit(1 if fails else 0)
EOF

"$B/test_safetensors" --peer-read "$W"
"$B/test_npy" --peer-read "$W"
echo "test_formats_peer: ok"
