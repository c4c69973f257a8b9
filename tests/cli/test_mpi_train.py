# SPDX-License-Identifier: MIT
"""mmcl train under MPI (docs/mpi.md, "train on several ranks"), with Open
MPI's mpirun on this machine (--oversubscribe: more ranks than cores).

What a user relies on: train started on 1, 2, 3 or 4 ranks writes the
model file of the program run once without mpirun, byte for byte, for
every objective (the closed forms cca, pca and shared-private, and clip,
trained data-parallel); a rank that cannot read its part of the rasters
stops the job with one message, non-zero, and no model; a model file that
is in the way stops every rank before the work.

The scene is larger than one sample tile (256 px), so that the sample is
drawn by several ranks, and the samples are more than one batch of the
moments (4096 rows: 20000 samples are five batches), so that the
moments are summed by several ranks.

Run by CTest only when mmcl was built with MPI ($MPIEXEC is then mpirun).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmcl_cli import run  # noqa: E402
from test_mpi import (damaged_copy, mpirun, one_message,  # noqa: E402
                      same_bytes, tmpdir)


class Scene:
    """A synthetic scene of 3 x 3 sample tiles, made once."""
    folder = None

    @classmethod
    def get(cls):
        if cls.folder is None:
            cls.folder = tmpdir("mpi_train_scene")
            run("synth", "-q", "--size", "640", os.path.join(cls.folder, "s"))
        s = os.path.join(cls.folder, "s")
        return os.path.join(s, "optical.tif"), os.path.join(s, "sar.tif")


# One thread per rank: the serial program then runs the same kernels as
# each rank (the model does not depend on --threads either, see
# test_train_cli.py).
OBJECTIVES = {
    "cca": ["--objective", "cca", "--samples", "20000"],
    "pca": ["--objective", "pca", "--samples", "20000"],
    "shared_private": ["--objective", "shared-private", "--dim", "2",
                       "--private-dim", "2", "--samples", "20000"],
    "clip": ["--objective", "clip", "--encoder", "mlp:16", "--samples",
             "6000", "--epochs", "2", "--batch", "512"],
}


class TestSameModel(unittest.TestCase):
    """1, 2, 3 and 4 ranks write the serial program's model file."""

    def check(self, name):
        opt, sar = Scene.get()
        d = tmpdir("mpi_train_" + name)
        args = ["train", "-q", "--threads", "1"] + OBJECTIVES[name]
        ref = os.path.join(d, "ref.mmcl")
        run(*(args + [opt, sar, ref]))
        for n in (1, 2, 3, 4):
            out = os.path.join(d, "n%d.mmcl" % n)
            p = mpirun(n, *(args + [opt, sar, out]))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(same_bytes(ref, out),
                            "train %s, %d ranks: not the serial model"
                            % (name, n))
        self.assertEqual(sorted(os.listdir(d)),
                         ["n1.mmcl", "n2.mmcl", "n3.mmcl", "n4.mmcl",
                          "ref.mmcl"], "something else written")

    def test_cca(self):
        self.check("cca")

    def test_pca(self):
        self.check("pca")

    def test_shared_private(self):
        self.check("shared_private")

    def test_clip(self):
        self.check("clip")


class TestFailures(unittest.TestCase):

    def test_unreadable_tile_stops_every_rank(self):
        opt, sar = Scene.get()
        d = tmpdir("mpi_train_bad_tile")
        # A copy of the optical raster with some of its tiles' bytes
        # destroyed: whichever rank draws them fails.
        bad = os.path.join(d, "bad.tif")
        before = damaged_copy(opt, bad)
        out = os.path.join(d, "m.mmcl")
        p = mpirun(3, "train", "-q", "--objective", "cca", bad, sar, out)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("bad.tif", one_message(self, p.stderr, "train"))
        self.assertEqual(sorted(os.listdir(d)), ["bad.tif"],
                         "something left beside the input")
        with open(bad, "rb") as f:
            self.assertEqual(f.read(), before, "input modified")

    def test_model_in_the_way_stops_every_rank(self):
        opt, sar = Scene.get()
        d = tmpdir("mpi_train_exists")
        out = os.path.join(d, "m.mmcl")
        with open(out, "wb") as f:
            f.write(b"not a model")
        p = mpirun(3, "train", "-q", "--objective", "cca", opt, sar, out)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("m.mmcl", one_message(self, p.stderr, "train"))
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"not a model", "the file was replaced")
        self.assertEqual(os.listdir(d), ["m.mmcl"])


if __name__ == "__main__":
    unittest.main()
