# SPDX-License-Identifier: MIT
"""The `mmcl align` program as a user runs it: real Sentinel-1/2 pairs,
agreement with gdalwarp (the independent reference), and exit codes and
messages on bad input.

Run by CTest with Debian's python3 (numpy + GDAL bindings):
    MMCL=build/mmcl python3 tests/cli/test_align_cli.py -v
Tests that need ../shared/data skip, saying so, when it is absent.
"""
import json
import os
import signal
import subprocess
import unittest

import numpy as np
from osgeo import gdal

from mmcl_cli import DATA, MMCL, SPAIN, Workdir, need_data, run

gdal.UseExceptions()

BEN_SITES = ["bigearthnet_33UUP_87_48", "bigearthnet_29UPU_36_85",
             "bigearthnet_35VPK_69_24"]
S2_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A",
            "B09", "B11", "B12"]


def read(path):
    ds = gdal.Open(path)
    return ds.ReadAsArray().astype(np.float64), ds


def same_grid(test, a, b):
    test.assertEqual((a.RasterXSize, a.RasterYSize),
                     (b.RasterXSize, b.RasterYSize))
    np.testing.assert_allclose(a.GetGeoTransform(), b.GetGeoTransform(),
                               rtol=0, atol=1e-9)
    test.assertTrue(a.GetSpatialRef().IsSame(b.GetSpatialRef()))


def gdalwarp_onto(src, grid_ds, out, resampling, et="0", nan=False):
    """gdalwarp of @p src onto the grid of @p grid_ds: masked (the source
    nodata leaves invalid samples out, the weights renormalised over the
    valid ones), or with @p nan NaN propagation (no nodata: unmasked
    kernels, a NaN sample makes the output NaN)."""
    gt = grid_ds.GetGeoTransform()
    w, h = grid_ds.RasterXSize, grid_ds.RasterYSize
    te = [gt[0], gt[3] + gt[5] * h, gt[0] + gt[1] * w, gt[3]]
    validity = (["-srcnodata", "None", "-wo", "INIT_DEST=NaN"] if nan
                else ["-dstnodata", "nan"])
    subprocess.run(["gdalwarp", "-q", "-overwrite", "-et", et, "-r",
                    resampling, "-te"] + [repr(v) for v in te] +
                   ["-ts", str(w), str(h), "-t_srs", grid_ds.GetProjection(),
                    "-ot", "Float32"] + validity + [src, out],
                   check=True)


def make_utm_grid(path):
    """An optical grid of 300 x 200 pixels of 10 m on UTM 31N."""
    o = gdal.GetDriverByName("GTiff").Create(path, 300, 200, 1,
                                             gdal.GDT_Float32)
    o.SetGeoTransform([500000, 10, 0, 4800000, 0, -10])
    o.SetProjection("EPSG:32631")
    o.GetRasterBand(1).Fill(1)


def check_statistics(test, ds, a):
    """The statistics stored with each band (accumulated as the tiles are
    written) are those of its valid values, as GDAL computes them."""
    for b in range(ds.RasterCount):
        md = ds.GetRasterBand(b + 1).GetMetadata()
        v = a[b][np.isfinite(a[b])]
        want = {"MINIMUM": v.min(), "MAXIMUM": v.max(), "MEAN": v.mean(),
                "STDDEV": v.std(), "VALID_PERCENT": 100.0 * v.size / a[b].size}
        for k, x in want.items():
            test.assertAlmostEqual(float(md["STATISTICS_" + k]), x,
                                   delta=1e-9 * max(1.0, abs(x)) +
                                   (0.01 if k == "VALID_PERCENT" else 0),
                                   msg="band %d %s" % (b + 1, k))


# Resamplings whose kernel propagates NaN: an output pixel is valid only
# when every SAR sample its kernel uses is (design section 3.1).
NAN_KERNELS = ("near", "bilinear", "cubic")


class RealData(Workdir):
    def test_spain_sar_from_utm_20m_lands_on_the_optical_grid(self):
        need_data(SPAIN)
        opt = os.path.join(SPAIN, "Spain_7370579_S2Hand.tif")
        sar = os.path.join(SPAIN, "derived",
                           "Spain_7370579_S1Hand_EPSG32630_20m.tif")
        orig = os.path.join(SPAIN, "Spain_7370579_S1Hand.tif")
        out = self.path("aligned.tif")
        run("align", "-q", opt, sar, out)
        a, ads = read(out)
        o, ods = read(orig)
        self.assertEqual(ads.RasterCount, 2)
        same_grid(self, ads, gdal.Open(opt))
        valid = np.isfinite(a[0]) & np.isfinite(o[0])
        r = np.corrcoef(a[0][valid], o[0][valid])[0, 1]
        print("Spain VV: r = %.4f over %d valid pixels" % (r, valid.sum()))
        self.assertGreaterEqual(r, 0.9)
        self.assertGreater(valid.mean(), 0.95)
        self.assertEqual(ads.GetRasterBand(1).GetDescription(), "VV")

    def test_bigearthnet_twelve_files_stack_on_10m_grid_and_align(self):
        for site in BEN_SITES:
            d = os.path.join(DATA, site)
            need_data(d)
            s2 = sorted(os.listdir(os.path.join(d, "S2")))
            files = []
            for band in S2_ORDER:
                files += [os.path.join(d, "S2", f) for f in s2
                          if f.endswith("_%s.tif" % band)]
            self.assertEqual(len(files), 12)
            sar = os.path.join(d, "derived", "S1_VV_VH_EPSG4326.tif")
            out = self.path(site + ".tif")
            run("align", "-q", *files, sar, out)
            a, ads = read(out)
            ref10 = gdal.Open([f for f in files if f.endswith("_B02.tif")][0])
            same_grid(self, ads, ref10)
            vv = os.path.join(d, "S1", [f for f in os.listdir(
                os.path.join(d, "S1")) if f.endswith("_VV.tif")][0])
            o, _ = read(vv)
            valid = np.isfinite(a[0])
            r = np.corrcoef(a[0][valid], o[valid])[0, 1]
            print("%s: 12 files -> %dx%d, VV r = %.3f, %.1f%% valid" %
                  (site, ads.RasterXSize, ads.RasterYSize, r,
                   100 * valid.mean()))
            self.assertGreaterEqual(r, 0.8)
            self.assertGreater(valid.mean(), 0.9)


class AgainstGdalwarp(Workdir):
    def check(self, opt, sar, resampling, extra=(), nan_twin=None):
        """mmcl align -et 0 against gdalwarp -et 0: equal to gdalwarp's
        masked output (source nodata set) within 1e-5 wherever both are
        valid; with a NaN-propagating kernel, valid exactly where
        gdalwarp's NaN propagation is (the rule of design section 3.1),
        and nowhere the masked output is not; with another, valid where
        the masked output is (to 0.1 %). gdalwarp's NaN propagation runs
        on @p nan_twin when given: @p sar with its nodata value made NaN.
        Returns mmcl's output."""
        tag = "%s_%s" % (os.path.basename(sar)[:-4], resampling)
        out = self.path("mmcl_%s.tif" % tag)
        ref = self.path("gdalwarp_%s.tif" % tag)
        run("align", "-q", "-et", "0", "-r", resampling, *extra, opt, sar,
            out)
        gdalwarp_onto(sar, gdal.Open(opt), ref, resampling)
        a, ads = read(out)
        g, _ = read(ref)
        check_statistics(self, ads, a)
        both = np.isfinite(a) & np.isfinite(g)
        diff = np.abs(a - g)[both].max()
        mismatch = (np.isfinite(a) != np.isfinite(g)).sum()
        print("%s %s: max abs diff %.3g over %d values, %d validity "
              "mismatches with gdalwarp's masked output" %
              (os.path.basename(sar), resampling, diff, both.sum(),
               mismatch))
        self.assertLessEqual(diff, 1e-5)
        self.assertGreater(both.sum(), 0.5 * a.size)
        if resampling not in NAN_KERNELS:
            self.assertLessEqual(mismatch, 0.001 * a.size)
        else:
            ref_nan = self.path("gdalwarp_nan_%s.tif" % tag)
            gdalwarp_onto(nan_twin or sar, gdal.Open(opt), ref_nan,
                          resampling, nan=True)
            n, _ = read(ref_nan)
            both_n = np.isfinite(a) & np.isfinite(n)
            diff_n = np.abs(a - n)[both_n].max()
            mismatch_n = int((np.isfinite(a) != np.isfinite(n)).sum())
            beyond = int((np.isfinite(a) & ~np.isfinite(g)).sum())
            print("  NaN propagation: max abs diff %.3g, %d validity "
                  "mismatches; %d pixels valid in mmcl and not in the "
                  "masked output" % (diff_n, mismatch_n, beyond))
            self.assertLessEqual(diff_n, 1e-5)
            self.assertEqual(mismatch_n, 0)
            self.assertEqual(beyond, 0)
        return a

    def test_equals_gdalwarp_on_spain(self):
        need_data(SPAIN)
        opt = os.path.join(SPAIN, "Spain_7370579_S2Hand.tif")
        sar = os.path.join(SPAIN, "derived",
                           "Spain_7370579_S1Hand_EPSG32630_20m.tif")
        for r in ("bilinear", "near", "cubic", "average"):
            self.check(opt, sar, r)

    def test_equals_gdalwarp_on_bigearthnet_geographic_sar(self):
        d = os.path.join(DATA, BEN_SITES[0])
        need_data(d)
        opt = os.path.join(d, "derived", "S2_12band_10m.vrt")
        sar = os.path.join(d, "derived", "S1_VV_VH_EPSG4326.tif")
        self.check(opt, sar, "bilinear")

    def test_equals_gdalwarp_on_synthetic_pair_with_tiles(self):
        # Synthetic: no shared data needed. The SAR on EPSG:4326, the
        # optical on UTM 31N; several tiles and threads.
        opt = self.path("opt.tif")
        sar = self.path("sar.tif")
        make_utm_grid(opt)
        s = gdal.GetDriverByName("GTiff").Create(sar, 180, 140, 2,
                                                 gdal.GDT_Float32)
        s.SetGeoTransform([2.995, 0.00025, 0, 43.36, 0, -0.00018])
        s.SetProjection("EPSG:4326")
        yy, xx = np.mgrid[0:140, 0:180]
        for b in range(2):
            s.GetRasterBand(b + 1).WriteArray(
                (np.sin(0.3 * xx + b) * np.cos(0.2 * yy) * 5 - 12)
                .astype(np.float32))
        s = None
        self.check(opt, sar, "bilinear", ("--tile", "64", "--threads", "2"))

    def make_holed_pair(self, opt, sar, sar_epsg, sar_gt, sar_w, sar_h,
                        nodata=float("nan")):
        """The optical grid (make_utm_grid) and a 2-band SAR with nodata
        holes (@p nodata, declared): a disc, a stripe and scattered single
        pixels; returns where the holes are."""
        make_utm_grid(opt)
        s = gdal.GetDriverByName("GTiff").Create(sar, sar_w, sar_h, 2,
                                                 gdal.GDT_Float32)
        s.SetGeoTransform(sar_gt)
        s.SetProjection("EPSG:%d" % sar_epsg)
        yy, xx = np.mgrid[0:sar_h, 0:sar_w]
        hole = (((xx - 0.4 * sar_w) ** 2 + (yy - 0.5 * sar_h) ** 2 <
                 (0.12 * sar_h) ** 2) |
                ((xx > 0.7 * sar_w) & (xx < 0.7 * sar_w + 3)) |
                ((3 * xx + 5 * yy) % 97 == 0))
        for b in range(2):
            v = np.sin(0.3 * xx + b) * np.cos(0.2 * yy) * 5 - 12
            v[hole] = nodata
            band = s.GetRasterBand(b + 1)
            band.SetNoDataValue(nodata)
            band.WriteArray(v.astype(np.float32))
        s = None
        return hole

    def test_nodata_holes_equal_gdalwarp_and_follow_the_validity_rule(self):
        # The SAR on EPSG:4326 with holes: for each NaN-propagating kernel,
        # gdalwarp's masked output where both are valid, the validity of
        # NaN propagation, and the same bytes for any tile and threads.
        # A finite nodata value (-9999) is read as NaN first: the same
        # output.
        opt = self.path("holed_opt.tif")
        sar = self.path("holed_sar.tif")
        sar_nd = self.path("holed_sar_9999.tif")
        sgt = [2.995, 0.00025, 0, 43.36, 0, -0.00018]
        self.make_holed_pair(opt, sar, 4326, sgt, 180, 140)
        self.make_holed_pair(opt, sar_nd, 4326, sgt, 180, 140, -9999.0)
        for r in NAN_KERNELS:
            a = self.check(opt, sar, r, ("--tile", "64", "--threads", "2"))
            nd = self.check(opt, sar_nd, r, ("--tile", "64"), nan_twin=sar)
            self.assertTrue(np.array_equal(a, nd, equal_nan=True))
            one = self.path("one_%s.tif" % r)
            run("align", "-q", "-et", "0", "-r", r, "--tile", "512",
                "--threads", "1", opt, sar, one)
            b, _ = read(one)
            self.assertTrue(np.array_equal(a, b, equal_nan=True))
            # The default lattice: the same bytes for any tile and threads.
            lat = [self.path("lattice_%s_%d.tif" % (r, t)) for t in (0, 1)]
            run("align", "-q", "-r", r, "--tile", "48", "--threads", "2",
                opt, sar, lat[0])
            run("align", "-q", "-r", r, "--tile", "256", "--threads", "1",
                opt, sar, lat[1])
            la, _ = read(lat[0])
            lb, _ = read(lat[1])
            self.assertTrue(np.array_equal(la, lb, equal_nan=True))

    def test_a_pixel_is_valid_only_when_every_sample_it_uses_is(self):
        # Design section 3.1 computed here: the SAR on the optical CRS at
        # 20 m, offset so that no optical pixel centre falls on a SAR
        # pixel edge or centre. An optical pixel at SAR position (sx, sy)
        # uses the SAR pixels near: floor(sx); bilinear: the 2 x 2 from
        # floor(sx - 0.5); cubic: the 4 x 4 around those. It is valid
        # exactly when they all are (pixels whose samples reach the SAR's
        # edge are left out).
        opt = self.path("rule_opt.tif")
        sar = self.path("rule_sar.tif")
        sgt = [499993.3, 20, 0, 4800002.9, 0, -20]
        hole = self.make_holed_pair(opt, sar, 32631, sgt, 160, 110)
        ox = 500000 + 10 * (np.arange(300) + 0.5)
        oy = 4800000 - 10 * (np.arange(200) + 0.5)
        sx = (ox - sgt[0]) / sgt[1]
        sy = (oy - sgt[3]) / sgt[5]
        for r, lo, n in (("near", 0, 1), ("bilinear", 0, 2),
                         ("cubic", -1, 4)):
            out = self.path("rule_%s.tif" % r)
            run("align", "-q", "-et", "0", "-r", r, "--tile", "64",
                "--threads", "2", opt, sar, out)
            a, _ = read(out)
            shift = 0.0 if r == "near" else 0.5
            ix = np.floor(sx - shift).astype(int) + lo
            iy = np.floor(sy - shift).astype(int) + lo
            inside_x = (ix >= 1) & (ix + n < 160 - 1)
            inside_y = (iy >= 1) & (iy + n < 110 - 1)
            want = np.ones((200, 300), bool)
            for dy in range(n):
                for dx in range(n):
                    h = hole[np.clip(iy + dy, 0, 109)][:, np.clip(ix + dx, 0,
                                                                  159)]
                    want &= ~h
            inside = inside_y[:, None] & inside_x[None, :]
            got = np.isfinite(a)
            wrong = int(((got[0] != want) & inside).sum() +
                        ((got[1] != want) & inside).sum())
            print("%s: %d of %d pixels valid by the rule, %d wrong" %
                  (r, int(want[inside].sum()), int(inside.sum()), wrong))
            self.assertGreater(int(inside.sum()), 0.8 * a[0].size)
            self.assertLess(int(want[inside].sum()), int(inside.sum()))
            self.assertEqual(wrong, 0)

    def test_sar_on_the_optical_grid_is_read_as_it_is(self):
        # Same grid: mmcl reads the SAR without the warper. Its pixels must
        # be gdalwarp's for every resampling, with a numeric nodata and
        # NaN both marking invalid pixels.
        opt = self.path("grid_opt.tif")
        sar = self.path("grid_sar.tif")
        drv = gdal.GetDriverByName("GTiff")
        gt = [500000, 10, 0, 4800000, 0, -10]
        o = drv.Create(opt, 150, 120, 1, gdal.GDT_Float32)
        o.SetGeoTransform(gt)
        o.SetProjection("EPSG:32631")
        o.GetRasterBand(1).Fill(1)
        o = None
        s = drv.Create(sar, 150, 120, 2, gdal.GDT_Float32,
                       ["TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32"])
        s.SetGeoTransform(gt)
        s.SetProjection("EPSG:32631")
        yy, xx = np.mgrid[0:120, 0:150]
        for b in range(2):
            v = (np.sin(0.3 * xx + b) * np.cos(0.2 * yy) * 5 - 12)
            v = v.astype(np.float32)
            v[10:20, 30:45] = -9999
            v[60:64, 100:140] = np.nan
            band = s.GetRasterBand(b + 1)
            band.SetNoDataValue(-9999)
            band.WriteArray(v)
        s = None
        for r in ("bilinear", "cubic", "average", "near"):
            out = self.path("grid_mmcl_%s.tif" % r)
            ref = self.path("grid_gdalwarp_%s.tif" % r)
            run("align", "-q", "-r", r, "--tile", "64", "--threads", "2",
                opt, sar, out)
            gdalwarp_onto(sar, gdal.Open(opt), ref, r)
            a, _ = read(out)
            g, _ = read(ref)
            same = np.array_equal(a, g, equal_nan=True)
            print("SAR on the grid, %s: %s, %d invalid values" %
                  (r, "identical to gdalwarp" if same else "DIFFERENT",
                   int(np.isnan(a).sum())))
            self.assertTrue(same)
            self.assertGreater(int(np.isnan(a).sum()), 0)


class CommandLine(Workdir):
    def setUp(self):
        super().setUp()
        self.opt = self.path("opt.tif")
        self.sar = self.path("sar.tif")
        drv = gdal.GetDriverByName("GTiff")
        for p, bands in ((self.opt, 3), (self.sar, 2)):
            ds = drv.Create(p, 64, 64, bands, gdal.GDT_Float32)
            ds.SetGeoTransform([500000, 10, 0, 4800000, 0, -10])
            ds.SetProjection("EPSG:32631")
            for b in range(bands):
                ds.GetRasterBand(b + 1).WriteArray(
                    np.random.default_rng(b).normal(size=(64, 64))
                    .astype(np.float32))
            ds = None

    def assert_fails(self, p, code, needle):
        self.assertEqual(p.returncode, code, p.stderr)
        self.assertIn(needle, p.stderr)
        self.assertIn("ERROR", p.stderr)

    def test_success_prints_progress_and_exits_zero(self):
        p = run("align", self.opt, self.sar, self.path("out.tif"))
        self.assertIn("0...10...20", p.stdout + p.stderr)
        self.assertIn("100 - done", p.stdout + p.stderr)
        q = run("align", "-q", self.opt, self.sar, self.path("q.tif"))
        self.assertEqual(q.stdout + q.stderr, "")

    def test_bad_input_exits_non_zero_with_a_message(self):
        out = self.path("out.tif")
        self.assert_fails(run("align", self.path("missing.tif"), self.sar,
                              out, check=False), 1, "does not exist")
        self.assert_fails(run("align", "--tilez", "4", self.opt, self.sar,
                              out, check=False), 2, "unknown option '--tilez'")
        self.assert_fails(run("align", self.opt, self.sar, check=False), 2,
                          "expected at least 3 arguments")
        self.assert_fails(run("align", "-co", "COMPRESS=NOPE", self.opt,
                              self.sar, out, check=False), 1,
                          "invalid creation option")
        self.assert_fails(run("align", "-r", "fancy", self.opt, self.sar, out,
                              check=False), 1, "must be one of")
        self.assertFalse(os.path.exists(out))
        with open(out, "w") as f:
            f.write("keep me")
        self.assert_fails(run("align", "-q", self.opt, self.sar, out,
                              check=False), 1, "--overwrite")
        with open(out) as f:
            self.assertEqual(f.read(), "keep me")
        # --overwrite replaces only an aligned SAR of an earlier run.
        self.assert_fails(run("align", "-q", "--overwrite", self.opt,
                              self.sar, out, check=False), 1,
                          "replaces only an aligned SAR")
        with open(out) as f:
            self.assertEqual(f.read(), "keep me")
        os.remove(out)
        run("align", "-q", self.opt, self.sar, out)
        run("align", "-q", "--overwrite", self.opt, self.sar, out)
        self.assertEqual(gdal.Open(out).RasterCount, 2)
        self.assertEqual([f for f in os.listdir(self.dir) if "tmp" in f], [])

    def test_sigterm_and_sigint_stop_the_run_and_leave_nothing(self):
        run("synth", "-q", "--size", "1536", "--seed", "1", self.path("s"))
        opt, sar = self.path("s/optical.tif"), self.path("s/sar.tif")
        run("train", "-q", "--objective", "cca", "--dim", "4", "--patch",
            "3", "--samples", "20000", opt, sar, self.path("m.mmcl"))
        for sig, name in ((signal.SIGTERM, "SIGTERM"),
                          (signal.SIGINT, "SIGINT")):
            out = self.path("emb.tif")
            p = subprocess.Popen([MMCL, "embed", "--threads", "1",
                                  self.path("m.mmcl"), opt, sar, out],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            seen = b""
            while b"10" not in seen:  # interrupt once 10% is done
                c = p.stdout.read(1)
                self.assertTrue(c, "embed ended before 10%%: %r" % seen)
                seen += c
            p.send_signal(sig)
            _, err = p.communicate(timeout=60)
            # The program ends as the signal would (shells: 128 + signal),
            # after removing its temporary file.
            self.assertEqual(p.returncode, -sig, err)
            self.assertIn(("interrupted by " + name).encode(), err)
            self.assertEqual(sorted(os.listdir(self.dir)),
                             ["m.mmcl", "opt.tif", "s", "sar.tif"])

    def test_json_output_keeps_progress_on_stderr(self):
        labels = self.path("labels.tif")
        ds = gdal.GetDriverByName("GTiff").CreateCopy(labels,
                                                      gdal.Open(self.opt))
        ds = None
        ds = gdal.Open(labels, gdal.GA_Update)
        ds.GetRasterBand(1).WriteArray(
            (np.arange(64 * 64).reshape(64, 64) % 3).astype(np.float32))
        ds = None
        # --dim 1: the 2-band SAR at patch 1 would make --dim 2 a model
        # whose training warning probe repeats on stderr.
        run("train", "-q", "--objective", "cca", "--dim", "1", "--patch",
            "1", "--samples", "2000", self.opt, self.sar,
            self.path("m.mmcl"))
        p = run("probe", "--json", "--samples", "0", self.path("m.mmcl"),
                self.opt, self.sar, labels)
        self.assertEqual(json.loads(p.stdout)["task"], "classes")
        self.assertIn("0...10...20", p.stderr)
        self.assertIn("100 - done.", p.stderr)
        q = run("probe", "--json", "-q", "--samples", "0",
                self.path("m.mmcl"), self.opt, self.sar, labels)
        self.assertEqual(q.stderr, "")

    def test_cog_output(self):
        out = self.path("out_cog.tif")
        run("align", "-q", "-of", "COG", self.opt, self.sar, out)
        ds = gdal.Open(out)
        self.assertEqual(ds.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE"),
                         "COG")
        self.assertEqual(ds.GetMetadataItem("PRODUCT", "MMCL"),
                         "aligned_sar")

    def test_general_options_version_and_help(self):
        p = run("--version")
        self.assertRegex(p.stdout, r"^mmcl \d+\.\d+\.\d+ \(GDAL ")
        self.assertIn("GTiff", run("--formats").stdout)
        self.assertIn("--config", run("--help-general").stdout +
                      run("--help-general").stderr)
        h = run("align", "--help").stdout
        for flag in ("-r METHOD", "-of FORMAT", "-co NAME=VALUE",
                     "--overwrite", "--speckle", "--sar-db"):
            self.assertIn(flag, h)
        p = run("--config", "GDAL_CACHEMAX", "64", "align", "-q", self.opt,
                self.sar, self.path("cfg.tif"))
        self.assertEqual(p.returncode, 0)
        p = run("nosuchcommand", check=False)
        self.assert_fails(p, 2, "unknown command")

    def test_json_usage_describes_every_option_from_the_tables(self):
        u = json.loads(run("align", "--json-usage").stdout)
        self.assertEqual(u["command"], "align")
        names = {o["name"] for o in u["options"]}
        self.assertTrue({"RESAMPLING", "SAR_TRANSFORM", "SPECKLE", "FORMAT",
                         "CO", "OVERWRITE", "TILE", "THREADS"} <= names)
        r = [o for o in u["options"] if o["name"] == "RESAMPLING"][0]
        self.assertEqual(r["default"], "auto")
        self.assertIn("average", r["choices"])
        self.assertEqual([p["name"] for p in u["positional"]],
                         ["OPTICAL", "SAR", "OUT"])
        # The SAR may also be given as several files with --sar.
        self.assertEqual([p.get("flag") for p in u["positional"]],
                         [None, "--sar", None])
        self.assertIn("   or: mmcl align [options] OPTICAL [OPTICAL...] "
                      "--sar SAR [--sar SAR...] OUT",
                      run("align", "--help").stdout)
        allu = json.loads(run("--json-usage").stdout)
        self.assertIn("synth", [c["command"] for c in allu["commands"]])


if __name__ == "__main__":
    unittest.main(verbosity=2)
