# SPDX-License-Identifier: MIT
"""`mmcl audit --lazy`: the audit maps as a lazy descriptor (product
"audit", include/mmcl/product.h), computed window by window by GDAL's MMCL
driver from the fit the descriptor holds.

- Level 0 read through the plugin (osgeo.gdal and gdal_translate) equals
  the map `mmcl audit` writes bit for bit when both run the same OpenBLAS
  kernel: for an `mmcl embed` map with --non-redundancy, and for an int8
  EPSG:4326 copy of it quantized as the Satellite Embedding (warped and
  de-quantized when read); the band descriptions, units and meanings and
  the MMCL metadata (PRODUCT=audit, EMBEDDING, DEQUANTIZE, the
  cross-validated figures of the fit, the maps' figures) are the written
  map's.
- The overviews (a 384 px scene has one, factor 2) are marked
  APPROXIMATE=YES, read the embedding raster on their own grid, and their
  information loss is within 0.05 of level 0's mean.
- A descriptor that does not fit fails to open, naming the descriptor and
  what is wrong: a fit for other bands, a layer of another shape, a value
  that is not a number, a model named beside the fit, no embedding raster.

    GDAL_DRIVER_PATH=build/plugin MMCL=build/mmcl \\
        /usr/bin/python3 tests/cli/test_audit_lazy.py -v
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
from osgeo import gdal

# The program runs the OpenBLAS kernel this process (the plugin) runs.
from test_plugin import MMCL_ENV as ENV
from test_plugin import mmcl

gdal.UseExceptions()


def quantize_alphaearth(x):
    q = np.sign(x) * np.sqrt(np.abs(x)) * 127.5
    q = np.clip(np.rint(np.nan_to_num(q)), -127, 127).astype(np.int8)
    q[~np.isfinite(x)] = -128
    return q


@unittest.skipUnless(gdal.GetDriverByName("MMCL"),
                     "the MMCL GDAL driver is not loaded (GDAL_DRIVER_PATH)")
class AuditLazy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mmcl-audit-lazy-")
        scene = os.path.join(cls.dir, "scene")
        mmcl("synth", "-q", "--size", "384", "--seed", "4", scene)
        cls.opt = os.path.join(scene, "optical.tif")
        cls.sar = os.path.join(scene, "sar.tif")
        model = cls.path("cca.mmcl")
        mmcl("train", "-q", "--objective", "cca", "--dim", "4", "--patch",
             "3", "--samples", "5000", cls.opt, cls.sar, model)
        cls.emb = cls.path("emb.tif")
        mmcl("embed", "-q", model, cls.opt, cls.sar, cls.emb)
        cls.q8 = cls.path("emb_4326_int8.tif")
        cls.int8_copy(cls.emb, cls.q8)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def path(cls, name):
        return os.path.join(cls.dir, name)

    @classmethod
    def int8_copy(cls, src, dst):
        """@p src warped to EPSG:4326 and quantized as the Satellite
        Embedding (signed bytes, nodata -128, bands A00..)."""
        tmp = cls.path("tmp_4326.tif")
        ds = gdal.Warp(tmp, src, dstSRS="EPSG:4326", resampleAlg="bilinear",
                       dstNodata=float("nan"))
        x = ds.ReadAsArray().astype(np.float64)
        gt, prj = ds.GetGeoTransform(), ds.GetProjection()
        ds = None
        q = quantize_alphaearth(x / np.nanmax(np.abs(x)))
        out = gdal.GetDriverByName("GTiff").Create(
            dst, x.shape[2], x.shape[1], x.shape[0], gdal.GDT_Byte,
            options=["PIXELTYPE=SIGNEDBYTE", "TILED=YES"])
        out.SetGeoTransform(gt)
        out.SetProjection(prj)
        for b in range(x.shape[0]):
            band = out.GetRasterBand(b + 1)
            band.WriteArray(q[b].view(np.uint8))
            band.SetNoDataValue(-128)
            band.SetDescription("A%02d" % b)
        out = None

    def both(self, name, embedding, *opts):
        """(written map, descriptor) of the audit of @p embedding."""
        tif, desc = self.path(name + ".tif"), self.path(name + ".mmcl.json")
        mmcl("audit", "-q", *opts, embedding, self.opt, self.sar, tif)
        mmcl("audit", "-q", "--lazy", *opts, embedding, self.opt, self.sar,
             desc)
        return tif, desc

    def assert_level0_is_the_map(self, tif, desc):
        a, b = gdal.Open(tif), gdal.Open(desc)
        self.assertEqual(b.GetDriver().ShortName, "MMCL")
        self.assertEqual(b.RasterCount, a.RasterCount)
        self.assertEqual(b.GetGeoTransform(), a.GetGeoTransform())
        for i in range(a.RasterCount):
            ba, bb = a.GetRasterBand(i + 1), b.GetRasterBand(i + 1)
            self.assertEqual(bb.GetDescription(), ba.GetDescription())
            self.assertEqual(bb.GetUnitType(), ba.GetUnitType())
            self.assertEqual(bb.GetMetadataItem("LONG_NAME"),
                             ba.GetMetadataItem("LONG_NAME"))
        x, y = a.ReadAsArray(), b.ReadAsArray()
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
        np.testing.assert_array_equal(x, y)
        ma, mb = a.GetMetadata("MMCL"), b.GetMetadata("MMCL")
        self.assertEqual(mb.get("PRODUCT"), "audit")
        self.assertEqual(mb, ma)
        # gdal_translate of the descriptor: the same pixels.
        copy = desc.replace(".mmcl.json", "_copy.tif")
        gdal.Translate(copy, desc)
        np.testing.assert_array_equal(gdal.Open(copy).ReadAsArray(), x)
        return b

    def test_lazy_equals_written_for_an_embedding_map(self):
        tif, desc = self.both("emb_nr", self.emb, "--non-redundancy")
        b = self.assert_level0_is_the_map(tif, desc)
        self.assertIn("nonredundancy_optical",
                      [b.GetRasterBand(i + 1).GetDescription()
                       for i in range(b.RasterCount)])
        with open(desc) as f:
            j = json.load(f)
        self.assertEqual(j["product"], "audit")
        self.assertEqual(j["embedding"], "emb.tif")  # beside it: relative
        self.assertNotIn("model", j)
        self.assertEqual(j["fit"]["k"], 4)
        self.assertTrue(os.path.exists(self.path("emb_nr.mmcl.qml")))

    def test_lazy_equals_written_for_an_int8_epsg4326_product(self):
        tif, desc = self.both("q8", self.q8)
        b = self.assert_level0_is_the_map(tif, desc)
        self.assertEqual(b.GetMetadataItem("DEQUANTIZE", "MMCL"),
                         "alphaearth")

    def test_overviews_read_the_embedding_on_their_grid(self):
        _, desc = self.both("ovr", self.emb)
        ds = gdal.Open(desc)
        band = ds.GetRasterBand(1)
        self.assertEqual(band.GetDescription(), "infoloss_optical")
        self.assertEqual(band.GetOverviewCount(), 1)
        ovr = band.GetOverview(0)  # ds and band stay referenced
        self.assertEqual((ovr.XSize, ovr.YSize),
                         (ds.RasterXSize // 2, ds.RasterYSize // 2))
        md = ovr.GetDataset().GetMetadata("MMCL")
        self.assertEqual(md["PRODUCT"], "audit")
        self.assertEqual(md["APPROXIMATE"], "YES")
        self.assertEqual(md["OVERVIEW_FACTOR"], "2")
        full = band.ReadAsArray()
        small = ovr.ReadAsArray()
        self.assertGreater(np.isfinite(small).mean(), 0.9)
        print("infoloss_optical mean: level 0 %.4f, overview %.4f" % (
            np.nanmean(full), np.nanmean(small)))
        self.assertAlmostEqual(float(np.nanmean(small)),
                               float(np.nanmean(full)), delta=0.05)

    def bad(self, edit, message):
        """A copy of a good descriptor changed by @p edit must fail to
        open with @p message (a regex)."""
        _, desc = self.both("good_%d" % abs(hash(message)), self.emb)
        with open(desc) as f:
            j = json.load(f)
        edit(j)
        broken = self.path("broken.mmcl.json")
        with open(broken, "w") as f:
            json.dump(j, f)
        p = subprocess.run(["gdalinfo", broken], capture_output=True,
                           text=True, env=ENV)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr, message)

    def test_bad_descriptors_are_refused_with_a_message(self):
        def bands(j):
            j["fit"]["sar"]["bands"] = 3
        self.bad(bands, r"descriptor '.*broken\.mmcl\.json': the audit was "
                        r"fitted on 3 sar bands; the sar raster has 4")

        def shape(j):
            j["fit"]["optical"]["decoder_aligned"]["in"] = 3
        self.bad(shape, r"\"fit\" of optical: layer \"decoder_aligned\" is "
                        r"3 -> 8, not 4 -> 8")

        def value(j):
            j["fit"]["optical"]["decoder_aligned"]["W"][0] = "x"
        self.bad(value, r"\"decoder_aligned\" holds a value that is not a "
                        r"finite number")

        def model(j):
            j["model"] = "cca.mmcl"
        self.bad(model, r"an audit map names no model: unexpected key "
                        r"\"model\"")

        def no_embedding(j):
            del j["embedding"]
        self.bad(no_embedding, r"missing key \"embedding\"")

        def no_fit(j):
            del j["fit"]
        self.bad(no_fit, r"missing or mistyped key \"fit\"")


if __name__ == "__main__":
    unittest.main()
