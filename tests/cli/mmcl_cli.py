# SPDX-License-Identifier: MIT
"""What the program-level tests share: where the program and the data are,
running `mmcl`, a scratch folder per test, and an independent reader of the
model file (json + NumPy, from the published safetensors layout).

The program is $MMCL (default build/mmcl); the real Sentinel pairs are
$MMCL_SHARED_DATA (default ../shared/data beside the source tree).
"""
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
MMCL = os.environ.get("MMCL", os.path.join(SOURCE, "build", "mmcl"))
DATA = os.environ.get("MMCL_SHARED_DATA",
                      os.path.join(SOURCE, "..", "shared", "data"))
SPAIN = os.path.join(DATA, "sen1floods11_spain_7370579")
SAMPLE = os.path.join(SOURCE, "sample_data")


def cpu_flags():
    """The CPU's feature flags (/proc/cpuinfo), or an empty set."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def need_data(path):
    """Skip, saying so, when a real data folder is absent."""
    if not os.path.isdir(path):
        raise unittest.SkipTest("real data folder %s is absent" % path)


def run(*args, check=True):
    """Run `mmcl ARGS...`; with check, fail the test on a non-zero exit."""
    p = subprocess.run([MMCL] + [str(a) for a in args], capture_output=True,
                       text=True)
    if check and p.returncode != 0:
        raise AssertionError("mmcl %s failed (%d): %s" %
                             (" ".join(map(str, args)), p.returncode,
                              p.stderr))
    return p


def read_safetensors(path):
    """Independent reader: 8-byte little-endian header length, JSON header,
    then little-endian float32 tensors at data_offsets. Returns the `mmcl`
    metadata (parsed) and the tensors by name."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__")
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", t
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(
            t["shape"])
    return json.loads(meta["mmcl"]), tensors


class Workdir(unittest.TestCase):
    """A test with its own scratch folder, removed afterwards."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mmcl-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)
