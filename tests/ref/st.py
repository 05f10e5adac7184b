"""st.py - a tiny safetensors writer/reader for the reference scripts.

There is no Python `safetensors` package on this machine, and the format is
small: u64 little-endian header length n, n bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the raw little-endian, row-major tensor bytes (offsets are relative to the
start of the data section). Tensors are written in the order given, packed
without gaps; the header is padded with spaces to a multiple of 8 bytes so the
data section is aligned (the format allows trailing whitespace in the header).
Only numpy is needed; torch tensors are accepted by the writer.
"""
import json
import struct

import numpy as np

# safetensors dtype name <-> numpy dtype (little-endian)
_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _as_numpy(t):
    if hasattr(t, "detach"):  # torch tensor
        t = t.detach().cpu().contiguous().numpy()
    return np.ascontiguousarray(t)


def save(path, tensors, metadata=None):
    """tensors: dict name -> numpy array or torch tensor (dtype kept as is);
    metadata: dict str -> str (values must already be strings, e.g. JSON text)."""
    header = {}
    blobs = []
    off = 0
    for name, t in tensors.items():
        a = _as_numpy(t)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dt not in _NAMES:
            raise ValueError("st.save: unsupported dtype %s for %s" % (a.dtype, name))
        b = a.astype(dt, copy=False).tobytes(order="C")
        header[name] = {"dtype": _NAMES[dt], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError("st.save: __metadata__ must map str -> str")
        header["__metadata__"] = dict(metadata)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    """Returns (dict name -> numpy array, metadata dict). Checks offsets."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("st.load: file too short")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("st.load: header length past end of file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, e in header.items():
        dt = _DTYPES[e["dtype"]]
        b, end = e["data_offsets"]
        shape = tuple(e["shape"])
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= b <= end <= len(data)) or end - b != count * dt.itemsize:
            raise ValueError("st.load: bad data_offsets for %s" % name)
        out[name] = np.frombuffer(data[b:end], dtype=dt).reshape(shape).copy()
    return out, meta
