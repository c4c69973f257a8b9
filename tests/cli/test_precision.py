# SPDX-License-Identifier: MIT
"""The encoders' engine and --precision, through the program, on a
synthetic scene with a linear CCA model and a clip MLP.

Tolerances (stated here, asserted below):
- f32 on oneDNN against the OpenBLAS path (MMCL_ENGINE=openblas, the
  products as mmcl ran them before oneDNN) and against oneDNN limited to
  another ISA: float32 rounding, amplified by the encoders' weights. Per
  band, max |a - b| <= F32_TOL * max |b| for embeddings, and max |a - b|
  <= F32_TOL for information-loss maps (standardized variance units).
- bf16 against f32 (the hidden layers' inputs and weights rounded to 8
  significant bits, f32 sums; the products reading the patch vectors and
  the one writing the embedding stay f32): clip MLP embeddings within
  BF16_EMB relative (Frobenius norm over the valid pixels), each pixel's
  embedding vector within BF16_PIXEL relative (99th percentile over the
  pixels), each component within BF16_COMPONENT of its band's standard
  deviation on average;
  information-loss maps within BF16_LOSS in mean absolute difference over
  all the bands, BF16_LOSS_BAND for the worst band; the global figures of
  the report within 0.01. Only an MLP's products from one hidden layer to
  the next run in bf16 (its first and last layers stay f32): a linear
  (CCA) encoder, and an MLP with one hidden layer, give in bf16 their f32
  maps, bit for bit.
- The same bits for any --threads and --tile, in each precision, on one
  machine (never compared with bits made elsewhere).
ONEDNN_MAX_CPU_ISA makes oneDNN act as an older CPU: AVX2 and AVX512_CORE
run f32 and refuse bf16; AVX512_CORE_BF16 and AVX512_CORE_AMX run bf16
where the CPU has them (skipped, saying so, where it does not).
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
from osgeo import gdal

from mmcl_cli import MMCL, cpu_flags

gdal.UseExceptions()

F32_TOL = 1e-4
BF16_EMB = 1e-2
BF16_PIXEL = 2e-2
BF16_COMPONENT = 1e-2
# Issue 19 asks for 1e-3. This scene's clip model reads 0.64e-3 over all
# its bands (the unimodal and noise-floor bands, of f32 products, exactly
# 0) with the last layer in f32, 1.07e-3 when it was bf16; its worst band
# (an information-loss band) 1.19e-3, 1.92e-3 before: each held to what
# is reached with a margin.
BF16_LOSS = 1e-3
BF16_LOSS_BAND = 1.5e-3
FIGURES_TOL = 0.01


def engine_line(env=None):
    p = subprocess.run([MMCL, "--version"], capture_output=True, text=True,
                       env=env)
    return [l for l in p.stdout.splitlines() if l.startswith("Encoders: ")][0]


def with_env(**kw):
    e = dict(os.environ)
    e.update(kw)
    return e


def read(path):
    ds = gdal.Open(path)
    a = ds.ReadAsArray()
    md = ds.GetMetadata("MMCL")
    return (a if a.ndim == 3 else a[None]), md


STATS = ("MINIMUM", "MAXIMUM", "MEAN", "STDDEV", "VALID_PERCENT")


def band_statistics(path):
    """Each band's STATISTICS_* items, as written in the file."""
    ds = gdal.Open(path)
    return [{k: ds.GetRasterBand(b + 1).GetMetadataItem("STATISTICS_" + k)
             for k in STATS} for b in range(ds.RasterCount)]


class Precision(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mmcl-precision-")
        cls.line = engine_line()
        cls.dnnl = cls.line.startswith("Encoders: oneDNN")
        cls.bf16 = "|bf16" in cls.line
        print(cls.line)
        cls.run_ok(["synth", "-q", "--size", "256", cls.path("scene")])
        scene = [cls.path("scene/optical.tif"), cls.path("scene/sar.tif")]
        cls.scene = scene
        cls.run_ok(["train", "-q", "--patch", "5", "--dim", "8"] + scene +
                   [cls.path("cca.mmcl")])
        cls.run_ok(["train", "-q", "--objective", "clip", "--encoder",
                    "mlp:64,64", "--patch", "5", "--dim", "8", "--epochs",
                    "2", "--samples", "20000"] + scene +
                   [cls.path("clip.mmcl")])
        # One hidden layer: its first layer reads the patch vectors and its
        # last writes the embedding, so no product of it runs in bf16.
        cls.run_ok(["train", "-q", "--objective", "clip", "--encoder",
                    "mlp:64", "--patch", "5", "--dim", "8", "--epochs", "1",
                    "--samples", "5000"] + scene + [cls.path("clip1.mmcl")])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def path(cls, name):
        return os.path.join(cls.dir, name)

    @classmethod
    def run_ok(cls, args, env=None):
        p = subprocess.run([MMCL] + args, capture_output=True, text=True,
                           env=env)
        if p.returncode != 0:
            raise AssertionError("mmcl %s: %s" % (" ".join(args), p.stderr))
        return p

    def map(self, kind, model, name, opts=(), env=None):
        """Runs embed or infoloss; returns the bands and the metadata."""
        name = "%s_%s" % (kind, name)
        out = self.path(name + ".tif")
        args = [kind, "-q", "--overwrite"] + list(opts)
        if kind == "infoloss":
            args += ["--report", self.path(name + ".json")]
        self.run_ok(args + [self.path(model)] + self.scene + [out], env)
        return read(out)

    def need_dnnl(self):
        if not self.dnnl:
            self.skipTest("mmcl was built without oneDNN: " + self.line)

    def need_bf16(self):
        if not self.bf16:
            self.skipTest("no native bf16 products on this CPU: " +
                          self.line)

    def assert_f32_close(self, a, b, kind, what):
        v = np.isfinite(b)
        self.assertTrue(np.array_equal(v, np.isfinite(a)), what)
        for i in range(a.shape[0]):
            d = np.abs(a[i] - b[i])[v[i]]
            if d.size == 0:
                continue
            scale = np.abs(b[i][v[i]]).max() if kind == "embed" else 1.0
            self.assertLessEqual(d.max(), F32_TOL * scale,
                                 "%s: band %d" % (what, i + 1))

    def assert_bf16_close(self, a, b, kind, what):
        """bf16 @p a against @p b: embeddings within BF16_EMB relative
        (Frobenius), BF16_PIXEL per pixel (99th percentile), BF16_COMPONENT
        of each band's standard deviation on average; information-loss
        maps within BF16_LOSS mean absolute difference."""
        if kind == "embed":
            v = np.isfinite(b).all(0)
            self.assertTrue(np.array_equal(v, np.isfinite(a).all(0)), what)
            d, x = (a - b)[:, v], b[:, v]
            rel = np.linalg.norm(d) / np.linalg.norm(x)
            pixel = np.linalg.norm(d, axis=0) / np.linalg.norm(x, axis=0)
            comp = (np.abs(d).mean(1) / x.std(1)).max()
            print("%s: relative difference %.4f, per pixel %.4f (99th "
                  "percentile; median %.4f, max %.4f), per component %.4f "
                  "of the band's std (worst band's mean)" %
                  (what, rel, np.percentile(pixel, 99), np.median(pixel),
                   pixel.max(), comp))
            self.assertLessEqual(rel, BF16_EMB, what)
            self.assertLessEqual(np.percentile(pixel, 99), BF16_PIXEL, what)
            self.assertLessEqual(comp, BF16_COMPONENT, what)
        else:
            v = np.isfinite(b)
            self.assertTrue(np.array_equal(v, np.isfinite(a)), what)
            d = np.abs(a - b)[v]
            band = max(np.abs(a[i] - b[i])[v[i]].mean()
                       for i in range(a.shape[0]) if v[i].any())
            print("%s: mean absolute difference %.5f (worst band %.5f, max "
                  "%.4f)" % (what, d.mean(), band, d.max()))
            self.assertLessEqual(d.mean(), BF16_LOSS, what)
            self.assertLessEqual(band, BF16_LOSS_BAND, what)

    def test_f32_equals_openblas_within_rounding(self):
        for model in ("cca.mmcl", "clip.mmcl"):
            for kind in ("embed", "infoloss"):
                a, md = self.map(kind, model, "a")
                b, _ = self.map(kind, model, "b",
                                env=with_env(MMCL_ENGINE="openblas"))
                self.assertEqual(md.get("PRECISION"), "f32")
                self.assert_f32_close(a, b, kind, "%s %s" % (kind, model))

    def same_bits(self, precision):
        for model in ("cca.mmcl", "clip.mmcl"):
            for kind in ("embed", "infoloss"):
                p = ["--precision", precision]
                a, _ = self.map(kind, model, "t1",
                                p + ["--threads", "1", "--tile", "64"])
                b, _ = self.map(kind, model, "t2",
                                p + ["--threads", "2", "--tile", "256"])
                c, _ = self.map(kind, model, "t3",
                                p + ["--threads", "2", "--tile", "48"])
                what = "%s %s %s" % (kind, model, precision)
                for x in (b, c):
                    self.assertTrue(
                        np.array_equal(a.view(np.uint32), x.view(np.uint32)),
                        what + ": bits differ")
                # The band statistics stored with the map (summed while
                # the tiles are written): the same, and those of the
                # pixels.
                st = [band_statistics(self.path("%s_%s.tif" % (kind, t)))
                      for t in ("t1", "t2", "t3")]
                self.assertEqual(st[0], st[1], what)
                self.assertEqual(st[0], st[2], what)
                for i, s in enumerate(st[0]):
                    v = a[i][np.isfinite(a[i])].astype(np.float64)
                    if v.size == 0:
                        self.assertIsNone(s["MEAN"], what)
                        continue
                    for k, x in (("MINIMUM", v.min()), ("MAXIMUM", v.max())):
                        # stored with 14 significant digits
                        self.assertAlmostEqual(float(s[k]), x,
                                               delta=1e-13 * abs(x),
                                               msg=what)
                    self.assertAlmostEqual(float(s["MEAN"]), v.mean(),
                                           delta=1e-9 * np.abs(v).max(),
                                           msg=what)
                    self.assertAlmostEqual(float(s["STDDEV"]), v.std(),
                                           delta=1e-6 * v.std() + 1e-12,
                                           msg=what)
                    self.assertAlmostEqual(float(s["VALID_PERCENT"]),
                                           100.0 * v.size / a[i].size,
                                           delta=0.01, msg=what)

    def test_f32_same_bits_any_threads_and_tiles(self):
        self.same_bits("f32")

    def test_bf16_same_bits_any_threads_and_tiles(self):
        self.need_bf16()
        self.same_bits("bf16")

    def test_bf16_close_to_f32(self):
        self.need_bf16()
        for model in ("cca.mmcl", "clip1.mmcl", "clip.mmcl"):
            for kind in ("embed", "infoloss"):
                a, _ = self.map(kind, model, "f")
                b, md = self.map(kind, model, "h", ["--precision", "bf16"])
                self.assertEqual(md.get("PRECISION"), "bf16")
                what = "%s %s" % (kind, model)
                if model != "clip.mmcl":
                    # No product between two hidden layers: each reads
                    # the patch vectors or writes the embedding, so all
                    # of them are f32.
                    self.assertTrue(np.array_equal(a.view(np.uint32),
                                                   b.view(np.uint32)), what)
                else:
                    self.assert_bf16_close(b, a, kind, what)
            with open(self.path("infoloss_f.json")) as f:
                fa = json.load(f)
            with open(self.path("infoloss_h.json")) as f:
                fb = json.load(f)
            self.assertEqual(fb["precision"], "bf16")
            self.assertEqual(fa["precision"], "f32")
            for m in ("optical", "sar"):
                for k, x in fa[m].items():
                    if isinstance(x, float):
                        self.assertAlmostEqual(x, fb[m][k], delta=FIGURES_TOL,
                                               msg="%s %s %s" % (model, m, k))

    def refused_under(self, isa):
        env = with_env(ONEDNN_MAX_CPU_ISA=isa)
        out = self.path("refused.tif")
        p = subprocess.run([MMCL, "embed", "-q", "--precision", "bf16",
                            self.path("clip.mmcl")] + self.scene + [out],
                           capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertRegex(p.stderr,
                         r"--precision bf16 needs a CPU with AVX-512 BF16 or "
                         r"AMX; oneDNN runs \w+ here \(ONEDNN_MAX_CPU_ISA=%s"
                         r"\), where bf16 would be emulated more slowly than "
                         r"f32: use f32" % isa)
        self.assertFalse(os.path.exists(out))
        self.assertEqual([n for n in os.listdir(self.dir) if "mmcl-tmp" in n],
                         [])

    def f32_under(self, isa):
        env = with_env(ONEDNN_MAX_CPU_ISA=isa)
        self.assertIn("ISA ", engine_line(env))
        for kind in ("embed", "infoloss"):
            a, _ = self.map(kind, "clip.mmcl", "i", env=env)
            b, _ = self.map(kind, "clip.mmcl", "d")
            self.assert_f32_close(a, b, kind, "%s under %s" % (kind, isa))

    def test_avx2_runs_f32_and_refuses_bf16(self):
        self.need_dnnl()
        self.assertIn("ISA avx2;", engine_line(
            with_env(ONEDNN_MAX_CPU_ISA="AVX2")))
        self.f32_under("AVX2")
        self.refused_under("AVX2")

    def test_avx512_core_runs_f32_and_refuses_bf16(self):
        self.need_dnnl()
        self.f32_under("AVX512_CORE")
        self.refused_under("AVX512_CORE")

    def bf16_under(self, isa, flag):
        self.need_dnnl()
        if flag not in cpu_flags():
            self.skipTest("this CPU has no %s: %s not run" % (flag, isa))
        env = with_env(ONEDNN_MAX_CPU_ISA=isa)
        self.assertIn("ISA %s;" % isa.lower(), engine_line(env))
        for kind in ("embed", "infoloss"):
            a, md = self.map(kind, "clip.mmcl", "i", ["--precision", "bf16"],
                             env=env)
            self.assertEqual(md.get("PRECISION"), "bf16")
            b, _ = self.map(kind, "clip.mmcl", "d", ["--precision", "bf16"])
            # The order of the f32 sums differs between the ISAs, and a
            # hidden value that lands on the other side of a bf16 rounding
            # boundary moves by a bf16 step: bf16's tolerance.
            self.assert_bf16_close(a, b, kind, "%s under %s" % (kind, isa))
            # And bf16 with this ISA's kernels is as close to f32.
            c, _ = self.map(kind, "clip.mmcl", "f")
            self.assert_bf16_close(a, c, kind,
                                   "%s under %s against f32" % (kind, isa))

    def test_avx512_bf16_runs_bf16(self):
        self.bf16_under("AVX512_CORE_BF16", "avx512_bf16")

    def test_amx_runs_bf16(self):
        self.bf16_under("AVX512_CORE_AMX", "amx_bf16")


if __name__ == "__main__":
    unittest.main()
