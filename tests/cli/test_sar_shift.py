# SPDX-License-Identifier: MIT
"""The SAR misregistration correction (--sar-shift, --sar-shift-field) as a
user runs it: what the corrected SAR must equal (the SAR with its
geotransform moved, gdalwarp of it, an independent nearest-neighbour
sampling of a varying field), the filling of low-confidence blocks, tiles
and threads, the commands and the lazy descriptors that accept it.

Run by CTest with Debian's python3 (numpy + GDAL bindings):
    MMCL=build/mmcl GDAL_DRIVER_PATH=build/plugin \\
        python3 tests/cli/test_sar_shift.py -v
The descriptor tests skip, saying so, without GDAL_DRIVER_PATH (the
plugin).
"""
import json
import os
import subprocess
import unittest

import numpy as np
from osgeo import gdal

from mmcl_cli import DATA, SPAIN, Workdir, need_data, run

gdal.UseExceptions()

SIZE = 200  # not a multiple of the blocks below: a partial last block


def read(path):
    return gdal.Open(path).ReadAsArray()


def moved(src, dst, dx, dy):
    """A copy of @src whose geotransform is moved so that its pixel
    (x + dx, y + dy) lies on pixel (x, y) of its old grid."""
    ds = gdal.Translate(dst, src)
    gt = list(ds.GetGeoTransform())
    gt[0] -= dx * gt[1]
    gt[3] -= dy * gt[5]
    ds.SetGeoTransform(gt)
    ds = None


def write_field(path, optical, block, dx, dy, conf=None, srs=None,
                origin_offset=(0.0, 0.0), names=None, product="coreg"):
    """A shift field as the coreg convention has it: one pixel per block
    of the optical grid; dx, dy (arrays or numbers) in optical pixels."""
    o = gdal.Open(optical)
    gt = o.GetGeoTransform()
    nbx = -(-o.RasterXSize // block)
    nby = -(-o.RasterYSize // block)
    full = np.ones((nby, nbx))
    dx = np.asarray(dx, dtype=np.float64) * full
    dy = np.asarray(dy, dtype=np.float64) * full
    conf = full if conf is None else np.asarray(conf, dtype=np.float64) * full
    ds = gdal.GetDriverByName("GTiff").Create(path, nbx, nby, 5,
                                              gdal.GDT_Float32)
    ds.SetGeoTransform([gt[0] + origin_offset[0], gt[1] * block, 0,
                        gt[3] + origin_offset[1], 0, gt[5] * block])
    ds.SetProjection(srs if srs else o.GetProjection())
    bands = [dx, dy, dx * abs(gt[1]), -dy * abs(gt[5]), conf]
    names = names or ["dx", "dy", "dx_m", "dy_m", "confidence"]
    for b, (name, v) in enumerate(zip(names, bands)):
        band = ds.GetRasterBand(b + 1)
        band.SetDescription(name)
        band.SetNoDataValue(float("nan"))
        band.WriteArray(v)
    md = {"MMCL_COREG_BLOCK": str(block),
          "MMCL_COREG_DX": "%g" % np.nanmedian(dx),
          "MMCL_COREG_DY": "%g" % np.nanmedian(dy)}
    if product:
        md["MMCL_PRODUCT"] = product
    ds.SetMetadata(md)
    ds = None


class Scene(Workdir):
    """A synthetic scene whose SAR is on the optical grid."""

    def setUp(self):
        super().setUp()
        run("synth", self.path("s"), "--size", SIZE, "--seed", 7,
            "--optical-bands", 3, "--sar-bands", 2, "-q")
        self.opt = self.path("s/optical.tif")
        self.sar = self.path("s/sar.tif")

    def align(self, out, *args, sar=None):
        run("align", self.opt, sar or self.sar, self.path(out), "-q",
            *args)
        return read(self.path(out))


class ConstantShift(Scene):
    def test_integer_shift_is_the_sar_with_its_geotransform_moved(self):
        for r in ["near", "bilinear"]:
            for dx, dy in [(2, -1), (0, 3), (-4, 0)]:
                moved(self.sar, self.path("m.tif"), dx, dy)
                a = self.align("a.tif", "--sar-shift", "%d,%d" % (dx, dy),
                               "-r", r, "--overwrite")
                b = self.align("b.tif", "-r", r, "--overwrite",
                               sar=self.path("m.tif"))
                self.assertEqual(a.tobytes(), b.tobytes(),
                                 "%s %d,%d" % (r, dx, dy))

    def test_shift_direction_is_the_convention(self):
        # The corrected SAR at optical (x, y) is the SAR at (x+dx, y+dy).
        a = self.align("a.tif", "--sar-shift", "2,-1")
        s = read(self.sar)
        np.testing.assert_array_equal(a[:, 1:, :-2], s[:, :-1, 2:])
        self.assertTrue(np.isnan(a[:, 0, :]).all())
        self.assertTrue(np.isnan(a[:, :, -2:]).all())

    def test_fractional_shift_equals_gdalwarp_of_the_moved_sar(self):
        o = gdal.Open(self.opt)
        gt = o.GetGeoTransform()
        bounds = (gt[0], gt[3] + gt[5] * SIZE, gt[0] + gt[1] * SIZE, gt[3])
        moved(self.sar, self.path("m.tif"), 1.37, -0.61)
        for r in ["bilinear", "cubic", "near"]:
            a = self.align("a.tif", "--sar-shift", "1.37,-0.61", "-r", r,
                           "--overwrite")
            gdal.Warp(self.path("w.tif"), self.path("m.tif"),
                      outputBounds=bounds, width=SIZE, height=SIZE,
                      resampleAlg=r, errorThreshold=0,
                      dstNodata=float("nan"))
            w = read(self.path("w.tif"))
            np.testing.assert_array_equal(np.isnan(a), np.isnan(w))
            ok = ~np.isnan(a)
            scale = np.abs(w[ok]).max()
            np.testing.assert_allclose(a[ok], w[ok], rtol=0,
                                       atol=1e-6 * scale, err_msg=r)

    def test_zero_shift_reads_the_sar_as_it_is(self):
        a = self.align("a.tif", "--sar-shift", "0,0")
        b = self.align("b.tif")
        self.assertEqual(a.tobytes(), b.tobytes())
        self.assertNotIn("SAR_SHIFT",
                         gdal.Open(self.path("a.tif")).GetMetadata("MMCL"))

    def test_shift_is_in_the_output_metadata(self):
        self.align("a.tif", "--sar-shift", "1.5,-0.7")
        md = gdal.Open(self.path("a.tif")).GetMetadata("MMCL")
        self.assertEqual(md.get("SAR_SHIFT"), "1.5,-0.7")


class ShiftField(Scene):
    def test_uniform_field_equals_the_constant_shift(self):
        write_field(self.path("f.tif"), self.opt, 32, 1.5, -0.75)
        for r in ["near", "bilinear"]:
            a = self.align("a.tif", "--sar-shift-field", self.path("f.tif"),
                           "-r", r, "--overwrite")
            b = self.align("b.tif", "--sar-shift", "1.5,-0.75", "-r", r,
                           "--overwrite")
            self.assertEqual(a.tobytes(), b.tobytes(), r)
        md = gdal.Open(self.path("a.tif")).GetMetadata("MMCL")
        self.assertEqual(md.get("SAR_SHIFT_FIELD"), self.path("f.tif"))

    def test_low_confidence_and_nan_blocks_take_their_neighbours_shift(self):
        dx = np.full((7, 7), 2.0)
        dy = np.full((7, 7), 1.0)
        conf = np.full((7, 7), 0.9)
        dx[3, 3], dy[3, 3], conf[3, 3] = -6.0, 5.0, 0.2  # unsure: wrong
        dx[1, 5], dy[1, 5], conf[1, 5] = np.nan, np.nan, 0.0
        dx[6, 0], dy[6, 0], conf[6, 0] = 9.0, 9.0, np.nan
        write_field(self.path("f.tif"), self.opt, 32, dx, dy, conf)
        a = self.align("a.tif", "--sar-shift-field", self.path("f.tif"),
                       "-r", "near")
        b = self.align("b.tif", "--sar-shift", "2,1", "-r", "near")
        self.assertEqual(a.tobytes(), b.tobytes())
        # With a threshold below the unsure block's, its shift is used.
        c = self.align("c.tif", "--sar-shift-field", self.path("f.tif"),
                       "-r", "near", "--shift-min-confidence", "0.1")
        self.assertNotEqual(c.tobytes(), b.tobytes())

    def test_field_is_bilinear_between_block_centres(self):
        # dx varies along x, dy along y; nearest neighbour, checked against
        # an independent sampling: source pixel floor(x + 0.5 + dx(x)).
        B = 15  # odd: block centres fall on pixel centres
        nbx = -(-SIZE // B)
        col = 0.37 * np.arange(nbx) - 1.1
        row = -0.23 * np.arange(nbx) + 0.9
        write_field(self.path("f.tif"), self.opt, B, col[None, :],
                    row[:, None])
        a = self.align("a.tif", "--sar-shift-field", self.path("f.tif"),
                       "-r", "near")
        s = read(self.sar)
        centres = np.array([(i * B + min((i + 1) * B, SIZE)) / 2
                            for i in range(nbx)])
        pos = np.arange(SIZE) + 0.5
        sx = np.floor(pos + np.interp(pos, centres, col)).astype(int)
        sy = np.floor(pos + np.interp(pos, centres, row)).astype(int)
        want = np.full_like(a, np.nan)
        okx = (sx >= 0) & (sx < SIZE)
        oky = (sy >= 0) & (sy < SIZE)
        yy, xx = np.nonzero(oky[:, None] & okx[None, :])
        want[:, yy, xx] = s[:, sy[yy], sx[xx]]
        np.testing.assert_array_equal(a, want)

    def test_tiles_and_threads_do_not_change_the_output(self):
        B = 24
        n = -(-SIZE // B)
        g = np.linspace(-1.7, 2.3, n)
        write_field(self.path("f.tif"), self.opt, B, g[None, :],
                    g[::-1, None] * 0.8)
        ref = None
        for tile, threads in [(256, 1), (32, 2), (48, 3), (16, 1)]:
            a = self.align("a%d.tif" % tile, "--sar-shift-field",
                           self.path("f.tif"), "-r", "bilinear", "--tile",
                           tile, "--threads", threads)
            if ref is None:
                ref = a
            self.assertEqual(a.tobytes(), ref.tobytes(), (tile, threads))


def displaced(src, dst, dx, dy):
    """A copy of the SAR @p src (on the optical grid) whose content is
    displaced as the convention has it: a feature at (x, y) appears at
    (x + dx, y + dy) (whole pixels); its geotransform the honest one, NaN
    where nothing was displaced to."""
    ds = gdal.Open(src)
    a = ds.ReadAsArray()
    b = np.full_like(a, np.nan)
    h, w = a.shape[1:]
    b[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        a[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    out = gdal.GetDriverByName("GTiff").CreateCopy(dst, ds)
    for k in range(b.shape[0]):
        out.GetRasterBand(k + 1).WriteArray(b[k])
        out.GetRasterBand(k + 1).SetNoDataValue(float("nan"))
    out = None


class Science(Workdir):
    def test_correcting_the_shift_restores_the_loss_fractions(self):
        # A SAR misregistered by (2, -1) pixels makes shared structure look
        # modality-specific: the loss fractions move by far more than 10 %;
        # corrected, they are within 10 % of the registered scene's.
        run("synth", self.path("s"), "--size", 384, "--seed", 11, "-q")
        opt, sar = self.path("s/optical.tif"), self.path("s/sar.tif")
        displaced(sar, self.path("off.tif"), 2, -1)

        def loss(sar, *args):
            m = self.path("m.mmcl")
            run("train", opt, sar, m, "-q", "--overwrite", *args)
            f = json.loads(run("info", "--json", m).stdout)
            f = f["metadata"]["figures"]["sample_r2"]
            return np.array([f[k]["loss_fraction"] for k in ("optical",
                                                             "sar")])
        registered = loss(sar)
        off = loss(self.path("off.tif"))
        fixed = loss(self.path("off.tif"), "--sar-shift", "2,-1")
        print("loss fractions (optical, SAR): registered %s, misregistered "
              "%s, corrected %s" % (registered, off, fixed))
        self.assertTrue((np.abs(fixed / registered - 1) <= 0.10).all())
        self.assertTrue((np.abs(off / registered - 1) > 0.10).any())


class RealData(Workdir):
    """Real pairs whose SAR is on another CRS: the shifted SAR equals
    gdalwarp -et 0 onto the optical grid moved by the shift (its masked
    output where both are valid; valid where its NaN propagation is, the
    rule of design section 3.1)."""

    def check(self, opt, sar, shift):
        from test_align_cli import gdalwarp_onto
        out = self.path("a.tif")
        run("align", "-q", opt, sar, out, "--sar-shift",
            "%g,%g" % shift, "-et", "0", "-r", "bilinear", "--overwrite")
        # The grid moved by the shift: its pixel (x, y) on the optical
        # pixel (x + dx, y + dy).
        moved(opt, self.path("grid.tif"), -shift[0], -shift[1])
        gdalwarp_onto(sar, gdal.Open(self.path("grid.tif")),
                      self.path("w.tif"), "bilinear")
        gdalwarp_onto(sar, gdal.Open(self.path("grid.tif")),
                      self.path("n.tif"), "bilinear", nan=True)
        a, w = read(out), read(self.path("w.tif"))
        n = read(self.path("n.tif"))
        both = np.isfinite(a) & np.isfinite(w)
        diff = np.abs(a[both] - w[both]).max()
        mismatch = int((np.isfinite(a) != np.isfinite(n)).sum())
        print("%s: %.1f %% valid, max |diff| %.3g against gdalwarp, %d "
              "validity mismatches with its NaN propagation" %
              (os.path.basename(sar), 100 * both.mean(), diff, mismatch))
        self.assertGreater(both.mean(), 0.9)
        self.assertEqual(mismatch, 0)
        self.assertLessEqual(diff, 1e-5 * np.abs(w[both]).max())

    def test_spain_sar_on_utm30_shifted(self):
        need_data(SPAIN)
        self.check(os.path.join(SPAIN, "Spain_7370579_S2Hand.tif"),
                   os.path.join(SPAIN, "derived",
                                "Spain_7370579_S1Hand_EPSG32630_20m.tif"),
                   (1.3, -0.4))

    def test_bigearthnet_sar_on_lonlat_shifted(self):
        d = os.path.join(DATA, "bigearthnet_33UUP_87_48")
        need_data(d)
        b02 = [f for f in sorted(os.listdir(os.path.join(d, "S2")))
               if f.endswith("_B02.tif")][0]
        self.check(os.path.join(d, "S2", b02),
                   os.path.join(d, "derived", "S1_VV_VH_EPSG4326.tif"),
                   (-0.7, 1.6))


def trained(test, *args):
    run("train", test.opt, test.sar, test.path("m.mmcl"), "--dim", 2,
        "--samples", 5000, "-q", *args)
    return test.path("m.mmcl")


class Commands(Scene):
    """embed, infoloss and probe accept the correction: with an integer
    shift their outputs are those of the SAR with its geotransform
    moved."""

    def setUp(self):
        super().setUp()
        moved(self.sar, self.path("m.tif"), 2, -1)
        self.model = trained(self)

    def test_embed_and_infoloss_accept_a_shift(self):
        for cmd in ["embed", "infoloss"]:
            a, b, c = (self.path(cmd + n) for n in ("a.tif", "b.tif", "c.tif"))
            run(cmd, self.model, self.opt, self.sar, a, "--sar-shift", "2,-1",
                "-q")
            run(cmd, self.model, self.opt, self.path("m.tif"), b, "-q")
            run(cmd, self.model, self.opt, self.sar, c, "-q")
            self.assertEqual(read(a).tobytes(), read(b).tobytes(), cmd)
            self.assertNotEqual(read(a).tobytes(), read(c).tobytes(), cmd)
            self.assertEqual(
                gdal.Open(a).GetMetadataItem("SAR_SHIFT", "MMCL"), "2,-1")
            self.assertIsNone(
                gdal.Open(c).GetMetadataItem("SAR_SHIFT", "MMCL"))

    def test_probe_accepts_a_shift_field(self):
        write_field(self.path("f.tif"), self.opt, 40, 2, -1)
        labels = self.path("s/labels.tif")
        run("probe", self.model, self.opt, self.sar, labels,
            "--sar-shift-field", self.path("f.tif"), "--csv",
            self.path("a.csv"), "-q")
        run("probe", self.model, self.opt, self.path("m.tif"), labels,
            "--csv", self.path("b.csv"), "-q")
        with open(self.path("a.csv")) as fa, open(self.path("b.csv")) as fb:
            self.assertEqual(fa.read(), fb.read())

    def test_train_records_the_shift_and_maps_warn_without_one(self):
        model = trained(self, "--sar-shift", "2,-1", "--overwrite")
        info = run("info", model).stdout
        self.assertIn('"sar_shift":"2,-1"', info)
        p = run("embed", model, self.opt, self.sar, self.path("e.tif"))
        self.assertRegex(p.stderr, r"Warning: the model was trained on a "
                         r"SAR corrected .*--sar-shift 2,-1")
        p = run("embed", model, self.opt, self.sar, self.path("f.tif"),
                "--sar-shift", "2,-1")
        self.assertNotIn("Warning", p.stderr)

    def test_shift_field_is_an_input_never_overwritten(self):
        write_field(self.path("f.tif"), self.opt, 40, 2, -1)
        before = open(self.path("f.tif"), "rb").read()
        p = run("align", self.opt, self.sar, self.path("f.tif"),
                "--sar-shift-field", self.path("f.tif"), "--overwrite",
                check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("f.tif", p.stderr)
        self.assertEqual(open(self.path("f.tif"), "rb").read(), before)


@unittest.skipUnless(os.environ.get("GDAL_DRIVER_PATH"),
                     "GDAL_DRIVER_PATH (the MMCL plugin's folder) not set")
class Descriptors(Scene):
    """Lazy descriptors with "sar_shift" and "sar_shift_field", read
    through GDAL's MMCL driver, equal the written maps."""

    @classmethod
    def setUpClass(cls):
        # The program and gdal_translate on one OpenBLAS kernel: they are
        # compared bit for bit (test_plugin.py says why).
        from test_plugin import gdal_side_blas_env
        env = gdal_side_blas_env()
        cls.saved = os.environ.get("OPENBLAS_CORETYPE")
        if env:
            os.environ["OPENBLAS_CORETYPE"] = env["OPENBLAS_CORETYPE"]

    @classmethod
    def tearDownClass(cls):
        if cls.saved is None:
            os.environ.pop("OPENBLAS_CORETYPE", None)

    def setUp(self):
        super().setUp()
        self.model = trained(self)
        write_field(self.path("f.tif"), self.opt, 24,
                    np.linspace(-1, 2, 9)[None, :], 0.5)

    def translate(self, src, dst):
        p = subprocess.run(["gdal_translate", "-q", src, dst],
                           capture_output=True, text=True, cwd=self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        return read(dst)

    def test_lazy_embed_with_a_field_equals_the_written_map(self):
        run("embed", self.model, self.opt, self.sar, self.path("e.tif"),
            "--sar-shift-field", self.path("f.tif"), "-q")
        run("embed", self.model, self.opt, self.sar,
            self.path("e.mmcl.json"), "--sar-shift-field",
            self.path("f.tif"), "--lazy", "-q")
        with open(self.path("e.mmcl.json")) as f:
            d = json.load(f)
        self.assertEqual(d["sar_shift_field"], "f.tif")
        lazy = self.translate(self.path("e.mmcl.json"), self.path("l.tif"))
        self.assertEqual(lazy.tobytes(), read(self.path("e.tif")).tobytes())
        # The overviews are computed with the same ground correction.
        ds = gdal.Open(self.path("e.mmcl.json"))
        ov = ds.GetRasterBand(1).GetOverview(0)
        if ov is not None:
            self.assertTrue(np.isfinite(ov.ReadAsArray()).any())

    def test_hand_written_descriptor_with_sar_shift(self):
        run("infoloss", self.model, self.opt, self.sar, self.path("i.tif"),
            "--sar-shift", "1.25,-0.5", "-q")
        d = {"mmcl_descriptor": 1, "product": "infoloss",
             "model": "m.mmcl", "optical": "s/optical.tif",
             "sar": "s/sar.tif", "sar_shift": "1.25,-0.5"}
        with open(self.path("i.mmcl.json"), "w") as f:
            json.dump(d, f)
        lazy = self.translate(self.path("i.mmcl.json"), self.path("l.tif"))
        self.assertEqual(lazy.tobytes(), read(self.path("i.tif")).tobytes())

    def test_descriptor_with_a_bad_field_is_refused(self):
        d = {"mmcl_descriptor": 1, "product": "embedding",
             "model": "m.mmcl", "optical": "s/optical.tif",
             "sar": "s/sar.tif", "sar_shift_field": "s/labels.tif"}
        with open(self.path("e.mmcl.json"), "w") as f:
            json.dump(d, f)
        p = subprocess.run(["gdalinfo", self.path("e.mmcl.json")],
                           capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("labels.tif", p.stderr)
        self.assertIn("not a shift field written by mmcl coreg", p.stderr)


if __name__ == "__main__":
    unittest.main()
