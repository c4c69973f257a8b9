# SPDX-License-Identifier: MIT
"""`mmcl coreg` as a user runs it: the shift it measures on synthetic scenes
whose SAR is misregistered by a known amount (`mmcl synth --sar-shift`,
`--sar-shift-field`), the shift field raster and report it writes, and the
real Sentinel-1/2 pairs.

Run by CTest with Debian's python3 (numpy + GDAL bindings):
    MMCL=build/mmcl python3 tests/cli/test_coreg.py -v
Tests that need ../shared/data skip, saying so, when it is absent.
"""
import json
import os
import shutil
import tempfile
import unittest

import numpy as np
from osgeo import gdal

from mmcl_cli import DATA, MMCL, SPAIN, need_data, run

gdal.UseExceptions()

# A scene with texture at the block scale: many land-cover cells with
# sharp edges, seen by both modalities through different mixings.
SCENE = ["--size", "512", "--class-blend", "0", "--classes", "64"]
BEN_SITES = ["bigearthnet_33UUP_87_48", "bigearthnet_29UPU_36_85",
             "bigearthnet_35VPK_69_24"]


def coreg(folder, out, *extra):
    """Runs mmcl coreg on the scene in @p folder; returns the report."""
    p = run("coreg", "-q", "--json", *extra,
            os.path.join(folder, "optical.tif"),
            os.path.join(folder, "sar.tif"), out)
    return json.loads(p.stdout)


def block_truth(folder, block):
    """The true shift averaged over each block: (2, nby, nbx)."""
    t = gdal.Open(os.path.join(folder, "shift_truth.tif")).ReadAsArray()
    h, w = t.shape[1:]
    nby, nbx = -(-h // block), -(-w // block)
    out = np.zeros((2, nby, nbx))
    for j in range(nby):
        for i in range(nbx):
            out[:, j, i] = t[:, j * block:(j + 1) * block,
                             i * block:(i + 1) * block].reshape(2, -1).mean(1)
    return out


class Scenes(unittest.TestCase):
    """Three scenes made once: the SAR shifted by (1.5, -0.7) px, by a
    smooth field of amplitude 2 px, and not shifted."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="mmcl-coreg-")
        cls.const = os.path.join(cls.root, "const")
        cls.field = os.path.join(cls.root, "field")
        cls.still = os.path.join(cls.root, "still")
        run("synth", "-q", *SCENE, "--sar-shift", "1.5,-0.7", cls.const)
        run("synth", "-q", *SCENE, "--sar-shift-field", "2", cls.field)
        run("synth", "-q", *SCENE, cls.still)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def out(self, name):
        return os.path.join(self.root, name)

    def test_synth_writes_the_true_shift(self):
        t = gdal.Open(os.path.join(self.const, "shift_truth.tif"))
        self.assertEqual([t.GetRasterBand(k).GetDescription()
                          for k in (1, 2)], ["dx", "dy"])
        a = t.ReadAsArray()
        np.testing.assert_allclose(a[0], 1.5, atol=1e-6)
        np.testing.assert_allclose(a[1], -0.7, atol=1e-6)
        f = gdal.Open(os.path.join(self.field, "shift_truth.tif"))
        a = f.ReadAsArray()
        self.assertLessEqual(np.abs(a).max(), 2.0)
        self.assertGreater(np.abs(a).max(), 1.0)  # it does move the SAR
        self.assertFalse(os.path.exists(
            os.path.join(self.still, "shift_truth.tif")))
        with open(os.path.join(self.field, "synth.json")) as fp:
            self.assertEqual(json.load(fp)["sar_shift"]["amplitude"], 2)

    def test_synth_shift_moves_the_sar_content(self):
        """A whole-pixel shift: the shifted SAR at (x + 2, y - 1) is the
        unshifted one at (x, y), where the noise is off."""
        a = os.path.join(self.root, "a")
        b = os.path.join(self.root, "b")
        run("synth", "-q", "--size", "128", "--noise", "0", a)
        run("synth", "-q", "--size", "128", "--noise", "0", "--sar-shift",
            "2,-1", b)
        sa = gdal.Open(os.path.join(a, "sar.tif")).ReadAsArray()
        sb = gdal.Open(os.path.join(b, "sar.tif")).ReadAsArray()
        np.testing.assert_array_equal(sb[:, :-1, 2:], sa[:, 1:, :-2])
        # The optical and the labels are the ground: unchanged.
        for name in ("optical.tif", "labels.tif"):
            np.testing.assert_array_equal(
                gdal.Open(os.path.join(a, name)).ReadAsArray(),
                gdal.Open(os.path.join(b, name)).ReadAsArray())

    def test_constant_shift_recovered_within_a_tenth_of_a_pixel(self):
        r = coreg(self.const, self.out("c.tif"), "--report",
                  self.out("c.json"))
        self.assertAlmostEqual(r["shift"]["dx"], 1.5, delta=0.1)
        self.assertAlmostEqual(r["shift"]["dy"], -0.7, delta=0.1)
        self.assertGreaterEqual(r["blocks"]["confident_share"], 0.25)
        with open(self.out("c.json")) as fp:
            self.assertEqual(json.load(fp), r)

    def test_correction_with_its_own_field_leaves_no_residual(self):
        """coreg of a SAR corrected with the field coreg measured on it:
        the residual global shift is 0 within 0.1 px, and the field and
        its report record the correction; the same with the constant
        shift. A residual field is not a correction: refused as one."""
        own = self.out("own.tif")
        plain = coreg(self.const, own)
        self.assertIsNone(plain["correction"])
        self.assertFalse(plain["shift"]["residual"])
        res = self.out("res.tif")
        r = coreg(self.const, res, "--sar-shift-field", own, "--report",
                  self.out("res.json"))
        print("\nresidual after its own field: dx %+.4f, dy %+.4f px (%d "
              "confident blocks)" % (r["shift"]["dx"], r["shift"]["dy"],
                                     r["blocks"]["confident"]))
        self.assertLess(abs(r["shift"]["dx"]), 0.1)
        self.assertLess(abs(r["shift"]["dy"]), 0.1)
        self.assertGreaterEqual(r["blocks"]["confident_share"], 0.25)
        self.assertTrue(r["shift"]["residual"])
        self.assertEqual(r["correction"]["sar_shift_field"], own)
        self.assertEqual(r["correction"]["shift_min_confidence"], 0.5)
        self.assertAlmostEqual(r["correction"]["mean_dx"], 1.5, delta=0.1)
        self.assertAlmostEqual(r["correction"]["mean_dy"], -0.7, delta=0.1)
        md = gdal.Open(res).GetMetadata("MMCL")
        self.assertEqual(md["SAR_SHIFT_FIELD"], own)
        self.assertEqual(md["SHIFT_MIN_CONFIDENCE"], "0.5")
        with open(self.out("res.json")) as fp:
            self.assertEqual(json.load(fp), r)
        r = coreg(self.const, self.out("res_c.tif"), "--sar-shift",
                  "1.5,-0.7")
        self.assertLess(abs(r["shift"]["dx"]), 0.1)
        self.assertLess(abs(r["shift"]["dy"]), 0.1)
        self.assertEqual(r["correction"]["sar_shift"], "1.5,-0.7")
        self.assertEqual(gdal.Open(self.out("res_c.tif")).GetMetadataItem(
            "SAR_SHIFT", "MMCL"), "1.5,-0.7")
        # The program says it is a residual.
        p = run("coreg", os.path.join(self.const, "optical.tif"),
                os.path.join(self.const, "sar.tif"), self.out("res_p.tif"),
                "--sar-shift", "1.5,-0.7")
        self.assertRegex(p.stdout, r"Residual shift of the SAR after the "
                         r"correction \(--sar-shift 1\.5,-0\.7\): dx [+-]0\.0")
        # A residual is no correction.
        p = run("align", "-q", os.path.join(self.const, "optical.tif"),
                os.path.join(self.const, "sar.tif"), self.out("al.tif"),
                "--sar-shift-field", res, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("shift field '%s' is a residual: mmcl coreg measured "
                      "it on the SAR corrected with --sar-shift-field %s"
                      % (res, own), p.stderr)
        self.assertFalse(os.path.exists(self.out("al.tif")))

    def test_unshifted_scene_gives_zero(self):
        r = coreg(self.still, self.out("s.tif"))
        self.assertLess(abs(r["shift"]["dx"]), 0.1)
        self.assertLess(abs(r["shift"]["dy"]), 0.1)
        self.assertGreaterEqual(r["blocks"]["confident_share"], 0.25)

    def test_smooth_field_median_error_of_confident_blocks(self):
        coreg(self.field, self.out("f.tif"))
        a = gdal.Open(self.out("f.tif")).ReadAsArray()
        truth = block_truth(self.field, 64)
        conf = a[4] >= 0.5
        self.assertGreaterEqual(conf.sum(), 16)
        err = np.hypot(a[0] - truth[0], a[1] - truth[1])[conf]
        self.assertLessEqual(np.median(err), 0.25)

    def test_field_raster_layout(self):
        coreg(self.const, self.out("l.tif"), "--block", "48")
        ds = gdal.Open(self.out("l.tif"))
        opt = gdal.Open(os.path.join(self.const, "optical.tif"))
        self.assertEqual((ds.RasterXSize, ds.RasterYSize), (11, 11))
        self.assertEqual(ds.RasterCount, 5)
        self.assertEqual([ds.GetRasterBand(k + 1).GetDescription()
                          for k in range(5)],
                         ["dx", "dy", "dx_m", "dy_m", "confidence"])
        for k in range(5):
            self.assertEqual(ds.GetRasterBand(k + 1).DataType,
                             gdal.GDT_Float32)
            self.assertTrue(np.isnan(ds.GetRasterBand(k + 1).GetNoDataValue()))
        ogt, gt = opt.GetGeoTransform(), ds.GetGeoTransform()
        np.testing.assert_allclose(gt, [ogt[0], 48 * ogt[1], 0, ogt[3], 0,
                                        48 * ogt[5]])
        self.assertTrue(ds.GetSpatialRef().IsSame(opt.GetSpatialRef()))
        md = ds.GetMetadata()
        self.assertEqual(md["MMCL_PRODUCT"], "coreg")
        self.assertEqual(md["MMCL_COREG_BLOCK"], "48")
        self.assertAlmostEqual(float(md["MMCL_COREG_DX"]), 1.5, delta=0.1)
        self.assertAlmostEqual(float(md["MMCL_COREG_DY"]), -0.7, delta=0.1)
        a = ds.ReadAsArray()
        est = ~np.isnan(a[0])
        self.assertTrue(est.any())
        # metres: east = dx * 10, north = -dy * 10 (north-up, 10 m pixels)
        np.testing.assert_allclose(a[2][est], 10 * a[0][est], rtol=1e-5)
        np.testing.assert_allclose(a[3][est], -10 * a[1][est], rtol=1e-5)
        # confidence in [0, 1], and 0 wherever there is no estimate
        self.assertTrue(((a[4] >= 0) & (a[4] <= 1)).all())
        self.assertTrue((a[4][~est] == 0).all())

    def test_same_field_for_any_number_of_threads(self):
        coreg(self.field, self.out("t1.tif"), "--threads", "1")
        coreg(self.field, self.out("t2.tif"), "--threads", "2")
        np.testing.assert_array_equal(
            gdal.Open(self.out("t1.tif")).ReadAsArray(),
            gdal.Open(self.out("t2.tif")).ReadAsArray())

    def test_uniform_sar_gives_no_estimate_and_says_so(self):
        sar = self.out("flat.tif")
        gdal.Translate(sar, os.path.join(self.still, "sar.tif"),
                       scaleParams=[[-1000, 1000, 3, 3]],
                       outputType=gdal.GDT_Float32)
        p = run("coreg", "-q", os.path.join(self.still, "optical.tif"), sar,
                self.out("flat_c.tif"))
        self.assertRegex(p.stderr, r"Warning: coreg: no block of optical "
                         r"'.*optical\.tif' has an estimate")
        a = gdal.Open(self.out("flat_c.tif")).ReadAsArray()
        self.assertTrue(np.isnan(a[:4]).all())
        self.assertTrue((a[4] == 0).all())

    def test_summary_printed_without_json(self):
        p = run("coreg", os.path.join(self.const, "optical.tif"),
                os.path.join(self.const, "sar.tif"), self.out("p.tif"))
        self.assertIn("0...10...20", p.stdout)  # GDAL's progress bar
        self.assertRegex(p.stdout, r"Global shift of the SAR: dx \+1\.[45]"
                         r"\d+, dy -0\.[67]\d+ optical pixels")


class RealPairs(unittest.TestCase):
    """The real pairs run through and get a field and a report (what they
    show is in docs/coreg.md; no figure is asserted across machines)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mmcl-coreg-real-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_spain_pair(self):
        need_data(SPAIN)
        out = os.path.join(self.dir, "spain.tif")
        p = run("coreg", "-q", "--json",
                os.path.join(SPAIN, "Spain_7370579_S2Hand.tif"),
                os.path.join(SPAIN, "Spain_7370579_S1Hand.tif"), out)
        r = json.loads(p.stdout)
        self.assertEqual(r["blocks"]["total"], 64)
        self.assertGreater(r["blocks"]["with_estimate"], 32)
        # A pair delivered co-registered: whatever is measured with
        # confidence is below a pixel.
        if r["blocks"]["confident"]:
            self.assertLess(r["shift"]["magnitude"], 1.5)
        ds = gdal.Open(out)
        self.assertEqual((ds.RasterXSize, ds.RasterYSize), (8, 8))

    def test_bigearthnet_sites(self):
        for site in BEN_SITES:
            d = os.path.join(DATA, site, "derived")
            need_data(d)
            with self.subTest(site=site):
                out = os.path.join(self.dir, site + ".tif")
                p = run("coreg", "-q", "--json", "--block", "40",
                        os.path.join(d, "S2_12band_10m.vrt"),
                        os.path.join(d, "S1_VV_VH.vrt"), out)
                r = json.loads(p.stdout)
                self.assertEqual(r["blocks"]["total"], 9)
                self.assertEqual(gdal.Open(out).RasterCount, 5)


if __name__ == "__main__":
    unittest.main()
