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


def bands(path):
    """The raster's bands by description, as float64 arrays."""
    from osgeo import gdal
    ds = gdal.Open(path)
    return {ds.GetRasterBand(b + 1).GetDescription():
            ds.GetRasterBand(b + 1).ReadAsArray().astype(np.float64)
            for b in range(ds.RasterCount)}


def ranks(v):
    r = np.empty(len(v))
    r[np.argsort(v, kind="stable")] = np.arange(len(v))
    return r


def spearman(a, b):
    """Spearman's rank correlation of two 1-D arrays without ties."""
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def specific_figures(loss, truth, mod):
    """The oracle check of a loss map against `mmcl synth`'s truth: the
    Spearman correlation of the structured loss of modality @p mod with
    the true energy of its specific factors inside the regions where they
    are switched on, and the mean structured loss inside and outside those
    regions. @p loss and @p truth: bands() of the map and of truth.tif."""
    energy = truth[mod + "_specific_energy"]
    v = loss["structured_loss_" + mod]
    ok = np.isfinite(v)
    inside = (energy > 0) & ok
    rho = spearman(v[inside], energy[inside])
    return rho, v[inside].mean(), v[(energy == 0) & ok].mean()


class Workdir(unittest.TestCase):
    """A test with its own scratch folder, removed afterwards."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mmcl-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)
