# SPDX-License-Identifier: MIT
"""`mmcl rgb` of a shift field (`mmcl coreg`): the colour wheel picture a
user reads the SAR's misregistration from. The hue of a confident block
is the direction of its shift, a block without an estimate is
transparent black, a field without shift is grey, and the legend states
the magnitude drawn in full colour.

Run by CTest with Debian's python3 (numpy + GDAL bindings):
    MMCL=build/mmcl python3 tests/cli/test_rgb_coreg.py -v
"""
import colorsys
import json
import math
import os
import shutil
import tempfile
import unittest

import numpy as np
from osgeo import gdal

from mmcl_cli import run
from test_sar_shift import write_field

gdal.UseExceptions()

BLOCK = 32


def hue_deg(rgb):
    """The hue of an (r, g, b) byte triplet, degrees in [0, 360)."""
    h, _, _ = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    return 360.0 * h


def angle_diff(a, b):
    return abs((a - b + 180.0) % 360.0 - 180.0)


def block_colours(picture, nbx, nby):
    """(nby, nbx, 4): the colour at the centre of each block's square, and
    whether each square is one colour."""
    a = gdal.Open(picture).ReadAsArray()
    s = a.shape[2] // nbx
    assert a.shape[1] == nby * s, a.shape
    squares = a.reshape(4, nby, s, nbx, s)
    uniform = (squares == squares[:, :, :1, :, :1]).all(axis=(0, 2, 4))
    return a[:, s // 2::s, s // 2::s].transpose(1, 2, 0), uniform


class ShiftedScene(unittest.TestCase):
    """A scene whose SAR is shifted by (1.5, -0.7) px, its coreg field."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="mmcl-rgb-coreg-")
        cls.scene = os.path.join(cls.root, "s")
        run("synth", "-q", "--sar-shift", "1.5,-0.7", "--class-blend", "0",
            "--classes", "64", "--size", "256", cls.scene)
        cls.field = os.path.join(cls.root, "field.tif")
        run("coreg", "-q", "--block", str(BLOCK),
            os.path.join(cls.scene, "optical.tif"),
            os.path.join(cls.scene, "sar.tif"), cls.field)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.root, name)

    def test_confident_blocks_have_the_hue_of_the_direction(self):
        out = self.path("wheel.png")
        run("rgb", "-q", self.field, out)
        f = gdal.Open(self.field).ReadAsArray()
        nby, nbx = f.shape[1:]
        colours, uniform = block_colours(out, nbx, nby)
        self.assertTrue(uniform.all(), "a block's square is not one colour")
        # Each block drawn as its square of optical pixels, on the optical
        # grid.
        pic = gdal.Open(out)
        self.assertEqual((pic.RasterXSize, pic.RasterYSize), (256, 256))
        self.assertAlmostEqual(pic.GetGeoTransform()[1], gdal.Open(
            os.path.join(self.scene, "optical.tif")).GetGeoTransform()[1])
        truth = math.degrees(math.atan2(-0.7, 1.5)) % 360.0
        confident = f[4] >= 0.5
        self.assertGreater(confident.sum(), nbx * nby // 4)
        hues = []
        for j, i in zip(*np.nonzero(confident)):
            hue = hue_deg(colours[j, i, :3])
            hues.append(hue)
            # The hue is the direction of the block's own estimate ...
            own = math.degrees(math.atan2(f[1, j, i], f[0, j, i])) % 360.0
            self.assertLess(angle_diff(hue, own), 2.0,
                            "block (%d, %d): shift %.2f, %.2f" %
                            (i, j, f[0, j, i], f[1, j, i]))
            self.assertEqual(colours[j, i, 3], 255)
        # ... and the confident blocks, together, show the true direction.
        mid = np.median([(h - truth + 180.0) % 360.0 - 180.0 for h in hues])
        self.assertLess(abs(mid), 3.0)
        md = pic.GetMetadata("MMCL")
        self.assertEqual(md["SOURCE_PRODUCT"], "coreg")
        self.assertEqual(md["SHIFT_RANGE_FROM"],
                         "98th percentile of the estimated shifts, at "
                         "least 0.5 px")
        with open(self.path("wheel.legend.json")) as fp:
            legend = json.load(fp)
        self.assertAlmostEqual(legend["range"], float(md["SHIFT_RANGE"]),
                               places=4)
        self.assertTrue(os.path.exists(self.path("wheel.legend.png")))

    def test_blocks_without_estimate_are_transparent_black(self):
        holed = self.path("holed.tif")
        gdal.Translate(holed, self.field)
        ds = gdal.Open(holed, gdal.GA_Update)
        for b in range(1, 6):
            band = ds.GetRasterBand(b)
            a = band.ReadAsArray()
            a[0, :] = np.nan
            a[:, 2] = np.nan
            band.WriteArray(a)
        ds = None
        out = self.path("holed.png")
        run("rgb", "-q", holed, out)
        nby, nbx = gdal.Open(holed).ReadAsArray().shape[1:]
        colours, _ = block_colours(out, nbx, nby)
        self.assertTrue((colours[0, :, :] == 0).all())
        self.assertTrue((colours[:, 2, :] == 0).all())
        self.assertTrue((colours[1:, 3, 3] == 255).all())

    def test_range_sets_the_full_colour_magnitude(self):
        out = self.path("ranged.tif")
        run("rgb", "-q", "--range", "0,10", self.field, out)
        md = gdal.Open(out).GetMetadata("MMCL")
        self.assertEqual(md["SHIFT_RANGE"], "10")
        self.assertEqual(md["SHIFT_RANGE_FROM"], "--range")
        # |shift| ~ 1.65 px of 10: faint colours, far from the pure hue.
        f = gdal.Open(self.field).ReadAsArray()
        nby, nbx = f.shape[1:]
        colours, _ = block_colours(out, nbx, nby)
        ok = np.isfinite(f[0])
        spread = (colours[..., :3].max(axis=2).astype(int) -
                  colours[..., :3].min(axis=2))[ok]
        self.assertLessEqual(spread.max(), 255 * 0.2)

    def test_over_blends_the_wheel_over_the_optical_picture(self):
        """--over OPTICAL: the picture `mmcl rgb OPTICAL` makes (with the
        same --bands), each block's colour of the wheel picture blended
        over it at half opacity, rounded: (picture + wheel + 1) // 2;
        the optical's own picture where a block has no estimate."""
        opt = os.path.join(self.scene, "optical.tif")
        wheel = self.path("w.tif")
        run("rgb", "-q", self.field, wheel)
        w = gdal.Open(wheel).ReadAsArray().astype(int)
        for tag, extra, mode in (("pca", [], "pca"),
                                 ("direct", ["--bands", "3,2,1"], "direct")):
            plain, over = self.path(tag + ".tif"), self.path(tag + "_o.tif")
            run("rgb", "-q", *extra, opt, plain)
            run("rgb", "-q", *extra, "--over", opt, self.field, over)
            a = gdal.Open(plain).ReadAsArray().astype(int)
            o = gdal.Open(over)
            self.assertEqual(o.GetGeoTransform(),
                             gdal.Open(opt).GetGeoTransform())
            tint = (w[3] == 255) & (a[3] == 255)
            self.assertGreater(tint.mean(), 0.5)
            want = a.copy()
            want[:3] = np.where(tint, (a[:3] + w[:3] + 1) // 2, a[:3])
            np.testing.assert_array_equal(o.ReadAsArray(), want, tag)
            md = o.GetMetadata("MMCL")
            self.assertEqual((md["SOURCE"], md["SOURCE_PRODUCT"],
                              md["MODE"], md["OVER"], md["OVER_MODE"],
                              md["OVER_OPACITY"]),
                             (self.field, "coreg", "shift_wheel", opt, mode,
                              "0.5"))
            with open(self.path(tag + "_o.legend.json")) as fp:
                legend = json.load(fp)
            self.assertEqual(legend["over"], opt)
            self.assertAlmostEqual(
                legend["range"],
                float(gdal.Open(wheel).GetMetadataItem("SHIFT_RANGE",
                                                       "MMCL")), places=4)

    def test_range_not_from_zero_refused(self):
        out = self.path("bad.png")
        p = run("rgb", "-q", "--range", "1,3", self.field, out, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("%s' is a shift field (mmcl coreg): --range must be "
                      "0,MAX" % self.field, p.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(self.path("bad.legend.png")))


class StillField(unittest.TestCase):
    """A field of zero shift is grey: nothing to see."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="mmcl-rgb-coreg-")

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def optical(self):
        """A 128 x 96 optical grid: fields of 4 x 3 blocks."""
        opt = os.path.join(self.root, "opt.tif")
        ds = gdal.GetDriverByName("GTiff").Create(opt, 128, 96, 1)
        ds.SetGeoTransform([500000, 10, 0, 4000000, 0, -10])
        ds = None
        return opt

    def test_zero_shift_is_grey(self):
        opt = self.optical()
        field = os.path.join(self.root, "zero.tif")
        write_field(field, opt, BLOCK, 0.0, 0.0, conf=0.9)
        out = os.path.join(self.root, "zero.png")
        run("rgb", "-q", field, out)
        colours, _ = block_colours(out, 4, 3)
        self.assertTrue((colours[..., :3] == 128).all(), colours[..., :3])
        self.assertTrue((colours[..., 3] == 255).all())

    def test_unconfident_shift_is_grey(self):
        opt = self.optical()
        field = os.path.join(self.root, "unsure.tif")
        conf = np.array([[0.0, 0.0, 1.0, 1.0]] * 3)
        write_field(field, opt, BLOCK, 0.0, 2.0, conf=conf)
        out = os.path.join(self.root, "unsure.png")
        run("rgb", "-q", field, out)
        colours, _ = block_colours(out, 4, 3)
        self.assertTrue((colours[:, :2, :3] == 128).all())
        # Confident: the pure hue of +dy (down), 90 degrees.
        for c in colours[:, 2:, :3].reshape(-1, 3):
            self.assertLess(angle_diff(hue_deg(c), 90.0), 2.0)
            self.assertEqual(int(c.max()) - int(c.min()), 255)


if __name__ == "__main__":
    unittest.main()
