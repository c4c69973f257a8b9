#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Independent reader of an mmcl model file, for the CTest test
model_file_python_reader.

Written from the published safetensors layout only (8-byte little-endian
header length N, N bytes of UTF-8 JSON header, then the byte buffer), with
Python's json and struct plus numpy; it deliberately does not import the
`safetensors` package or share code with src/model/model.c. It checks the layout
rules strictly, then compares every tensor bit for bit, and the metadata,
with what test_model --write-fixture says it stored.

Usage: check_model_file.py MODEL.mmcl EXPECTED.json
EXPECTED.json: {"metadata_input": {...},
                "tensors": {"<name>": {"shape": [...], "bits": [uint32...]}}}
Exits 0 when everything matches, 1 with a message otherwise (also when
numpy is missing: this test must never pass silently).
"""

import json
import struct
import sys

try:
    import numpy as np
except ImportError as exc:  # fail loudly, never skip
    sys.stderr.write(f"check_model_file.py: FAIL: numpy is required ({exc})\n")
    sys.exit(1)

MAX_HEADER = 100_000_000  # the safetensors reference limit
FORMAT_VERSION = 1


class CheckError(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckError(msg)


def no_duplicates(pairs):
    """object_pairs_hook: reject a key present twice in one object."""
    out = {}
    for key, value in pairs:
        check(key not in out, f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def no_constants(name):
    raise CheckError(f"non-standard JSON constant {name}")


def strict_loads(text):
    return json.loads(text, object_pairs_hook=no_duplicates,
                      parse_constant=no_constants)


def is_uint(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_model(path):
    with open(path, "rb") as f:
        data = f.read()
    check(len(data) >= 8, f"file is {len(data)} bytes, < 8")
    (n,) = struct.unpack("<Q", data[:8])
    check(n <= MAX_HEADER, f"header length {n} over the limit")
    check(8 + n <= len(data), f"header length {n} past end of file")
    check((8 + n) % 8 == 0, f"8 + header length ({8 + n}) not a multiple of 8")
    raw = data[8:8 + n]
    text = raw.decode("utf-8")  # strict: raises on bad UTF-8
    body = text.rstrip(" ")
    check(body.startswith("{") and body.endswith("}"),
          "header is not a JSON object padded with spaces")
    header = strict_loads(text)
    check(isinstance(header, dict), "header is not an object")
    buffer = data[8 + n:]

    # Metadata: string -> string, format "mmcl", "mmcl" a JSON object.
    check("__metadata__" in header, "no __metadata__")
    meta = header.pop("__metadata__")
    check(isinstance(meta, dict), "__metadata__ is not an object")
    for key, value in meta.items():
        check(isinstance(value, str), f"__metadata__[{key!r}] is not a string")
    check(meta.get("format") == "mmcl", f"format is {meta.get('format')!r}")
    mmcl = strict_loads(meta["mmcl"])
    check(isinstance(mmcl, dict), "__metadata__['mmcl'] is not an object")
    check(list(mmcl)[:1] == ["format_version"], "format_version is not first")
    check(is_uint(mmcl["format_version"])
          and mmcl["format_version"] == FORMAT_VERSION,
          f"format_version is {mmcl['format_version']!r}")

    # Tensors: header keys in name order, buffer tiled in the same order.
    names = list(header)
    check(names == sorted(names), f"tensors not in name order: {names}")
    tensors = {}
    pos = 0
    for name in names:
        info = header[name]
        check(isinstance(info, dict), f"{name}: entry is not an object")
        check(set(info) == {"dtype", "shape", "data_offsets"},
              f"{name}: keys {sorted(info)}")
        check(info["dtype"] == "F32", f"{name}: dtype {info['dtype']!r}")
        shape = info["shape"]
        check(isinstance(shape, list) and len(shape) <= 4
              and all(is_uint(d) for d in shape), f"{name}: shape {shape!r}")
        offsets = info["data_offsets"]
        check(isinstance(offsets, list) and len(offsets) == 2
              and all(is_uint(o) for o in offsets),
              f"{name}: data_offsets {offsets!r}")
        begin, end = offsets
        count = 1
        for d in shape:
            count *= d
        check(begin == pos, f"{name}: begins at {begin}, expected {pos}")
        check(end - begin == 4 * count,
              f"{name}: {end - begin} bytes for shape {shape}")
        check(end <= len(buffer), f"{name}: ends past the buffer")
        if count:
            arr = np.frombuffer(buffer, dtype="<f4", count=count, offset=begin)
        else:
            arr = np.zeros(0, dtype="<f4")
        tensors[name] = arr.reshape(shape)
        pos = end
    check(pos == len(buffer), f"tensors end at {pos}, buffer has {len(buffer)}")
    return mmcl, tensors


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 1
    model_path, expected_path = argv[1], argv[2]
    with open(expected_path, "rb") as f:
        expected = strict_loads(f.read().decode("utf-8"))
    try:
        metadata, tensors = read_model(model_path)
        want_meta = dict(expected["metadata_input"])
        want_meta.pop("format_version", None)
        want_meta = {"format_version": FORMAT_VERSION, **want_meta}
        check(metadata == want_meta,
              f"metadata {metadata!r} != expected {want_meta!r}")
        want = expected["tensors"]
        check(sorted(tensors) == sorted(want),
              f"tensor names {sorted(tensors)} != {sorted(want)}")
        for name, exp in want.items():
            arr = tensors[name]
            check(list(arr.shape) == exp["shape"],
                  f"{name}: shape {list(arr.shape)} != {exp['shape']}")
            bits = arr.reshape(-1).view("<u4").tolist()
            check(bits == exp["bits"],
                  f"{name}: values differ: {bits} != {exp['bits']}")
    except (CheckError, KeyError, ValueError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"check_model_file.py: FAIL: {model_path}: {exc}\n")
        return 1
    print(f"check_model_file.py: OK: {model_path}: {len(tensors)} tensors "
          f"match bit for bit, metadata keys {sorted(metadata)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
