# SPDX-License-Identifier: MIT
"""The GDAL driver plugin gdal_MMCL.so as GDAL programs, the Python
bindings and QGIS use it: a lazy descriptor (`mmcl embed|infoloss|rgb
--lazy`) read through gdal_translate, gdalinfo, osgeo.gdal and qgis_process
must give what `mmcl embed|infoloss|rgb` writes (pictures byte for byte),
on sample_data/ and on the real Spain pair, from several threads at once;
bad descriptors fail with a clear message and no crash.

    GDAL_DRIVER_PATH=build/plugin MMCL=build/mmcl \\
        python3 tests/cli/test_plugin.py -v

The QGIS test needs /usr/bin/qgis_process.bin (Debian qgis 3.22) and skips,
saying so, without it.
"""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

import numpy as np
from osgeo import gdal

from mmcl_cli import MMCL, SAMPLE, SPAIN

gdal.UseExceptions()

QGIS_PROCESS = "/usr/bin/qgis_process.bin"
TOL = 1e-6


def run(*args, check=True, env=None):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                       env=env)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" %
                             (" ".join(map(str, args)), p.returncode,
                              p.stderr))
    return p


def gdal_side_blas_env():
    """The environment for the mmcl program that makes it run the OpenBLAS
    kernel this process runs, and the GDAL programs it starts (they
    inherit its environment): on a CPU that OpenBLAS misdetects, the
    program would otherwise choose a better kernel than the plugin gets
    (include/mmcl/blas.h), and kernels round differently, while these
    tests compare the two bit for bit."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return None  # the program keeps it too
    import ctypes
    gdal.GetDriverByName("MMCL")  # the plugin, hence OpenBLAS, is loaded
    try:
        blas = ctypes.CDLL("libopenblas.so.0")
    except OSError:
        return None  # not OpenBLAS: nothing to choose
    blas.openblas_get_corename.restype = ctypes.c_char_p
    kernel = blas.openblas_get_corename().decode()
    return dict(os.environ, OPENBLAS_CORETYPE=kernel)


MMCL_ENV = gdal_side_blas_env()


def mmcl(*args, check=True):
    return run(MMCL, *args, check=check, env=MMCL_ENV)


def read(path, srcwin=None):
    ds = gdal.Open(path)
    if srcwin:
        return ds.ReadAsArray(*srcwin)
    return ds.ReadAsArray()


def max_abs_diff(a, b):
    """Max |a - b| where both are finite; NaN patterns must agree."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    na, nb = np.isnan(a), np.isnan(b)
    assert np.array_equal(na, nb), "NaN (nodata) patterns differ"
    if (~na).any():
        return float(np.max(np.abs(a[~na] - b[~na])))
    return 0.0


class Scene:
    """A model and its rasters, with materialized and lazy products."""

    def __init__(self, root, name, optical, sar, train_args):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.optical, self.sar = optical, sar
        self.model = self.path("model.mmcl")
        mmcl("train", "-q", *train_args, optical, sar, self.model)

    def path(self, name):
        return os.path.join(self.dir, name)

    def product(self, command, name, *opts):
        """(materialized file, lazy descriptor) of one product."""
        tif, desc = self.path(name + ".tif"), self.path(name + ".mmcl.json")
        mmcl(command, "-q", *opts, self.model, self.optical, self.sar, tif)
        mmcl(command, "-q", "--lazy", *opts, self.model, self.optical,
             self.sar, desc)
        return tif, desc

    def picture(self, name, source, *opts):
        """(written picture, lazy descriptor) of `mmcl rgb` on @p source
        (a raster or a descriptor); --no-legend where both would share a
        legend name."""
        tif, desc = self.path(name + ".tif"), self.path(name + ".mmcl.json")
        mmcl("rgb", "-q", *opts, source, tif)
        mmcl("rgb", "-q", "--lazy", "--no-legend", *opts, source, desc)
        return tif, desc


def picture_metadata(md):
    """The MMCL metadata of a picture without what names files."""
    return {k: v for k, v in md.items() if k not in ("SOURCE", "LEGEND")}


class Plugin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="mmcl-plugin-")
        cls.sample = Scene(cls.root, "sample",
                           os.path.join(SAMPLE, "optical.tif"),
                           os.path.join(SAMPLE, "sar.tif"),
                           ["--objective", "cca", "--dim", "3", "--patch", "3",
                            "--samples", "8000"])
        cls.emb = cls.sample.product("embed", "emb")
        cls.loss = cls.sample.product("infoloss", "loss", "--non-redundancy")
        # Pictures: PCA of the written embedding and of the lazy one (read
        # through the library), a colour-mapped info-loss band, a
        # diverging one from the lazy map, and three bands shown directly.
        cls.pics = [
            cls.sample.picture("pic_pca", cls.emb[0]),
            cls.sample.picture("pic_pca_lazy_src", cls.emb[1]),
            cls.sample.picture("pic_loss", cls.loss[0]),
            cls.sample.picture("pic_excess", cls.loss[1], "--bands",
                               "excess_sar", "--tile", "128"),
            cls.sample.picture("pic_direct", cls.emb[0], "--bands", "3,1,2",
                               "--range", "-1,1"),
        ]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def test_check_plugin_finds_the_driver_and_names_its_file(self):
        p = mmcl("--check-plugin")
        self.assertIn("found", p.stdout)
        self.assertIn("gdal_MMCL.so", p.stdout)
        env = dict(os.environ, GDAL_DRIVER_PATH=self.root)
        p = run(MMCL, "--check-plugin", check=False, env=env)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not found", p.stdout)

    def test_descriptor_is_small_json_with_relative_model_path(self):
        with open(self.emb[1]) as f:
            d = json.load(f)
        self.assertEqual(d["product"], "embedding")
        self.assertEqual(d["model"], "model.mmcl")
        self.assertEqual(d["modality"], "joint")
        with open(self.loss[1]) as f:
            self.assertTrue(json.load(f)["non_redundancy"])

    def check_translate_equals(self, tif, desc, out_dir):
        out = os.path.join(out_dir, os.path.basename(desc) + ".tif")
        run("gdal_translate", "-q", desc, out)
        d = max_abs_diff(read(tif), read(out))
        self.assertLessEqual(d, TOL, "%s: max abs diff %g" % (desc, d))

    def test_gdal_translate_equals_mmcl_output_on_sample_data(self):
        for tif, desc in (self.emb, self.loss):
            self.check_translate_equals(tif, desc, self.sample.dir)

    def test_gdal_translate_equals_mmcl_output_on_the_spain_pair(self):
        if not os.path.isdir(SPAIN):
            self.skipTest("the shared data folder %s is absent" % SPAIN)
        s = Scene(self.root, "spain",
                  os.path.join(SPAIN, "Spain_7370579_S2Hand.tif"),
                  os.path.join(SPAIN, "derived",
                               "Spain_7370579_S1Hand_EPSG32630_20m.tif"),
                  ["--objective", "cca", "--dim", "4", "--patch", "3",
                   "--samples", "20000"])
        for command, name, opts in (("embed", "emb", ["--modality", "optical"]),
                                    ("infoloss", "loss", [])):
            tif, desc = s.product(command, name, *opts)
            self.check_translate_equals(tif, desc, s.dir)
        # A picture of the lazy embedding, byte for byte.
        pic, pic_desc = s.picture("pic", s.path("emb.mmcl.json"))
        out = s.path("pic_copy.tif")
        run("gdal_translate", "-q", pic_desc, out)
        self.assertTrue(np.array_equal(read(pic), read(out)))
        # 512 x 512: one overview of 256 x 256, approximate.
        ds = gdal.Open(desc)
        band = ds.GetRasterBand(1)
        self.assertEqual(band.GetOverviewCount(), 1)
        ovr = band.GetOverview(0)  # ds and band stay referenced
        self.assertEqual((ovr.XSize, ovr.YSize), (256, 256))
        md = ovr.GetDataset().GetMetadata("MMCL")
        self.assertEqual(md["APPROXIMATE"], "YES")
        self.assertEqual(md["OVERVIEW_FACTOR"], "2")
        full = read(tif)[0]
        approx = ovr.ReadAsArray()
        self.assertTrue(np.isfinite(approx).mean() > 0.9)
        # An approximation: the overview's mean is close to the 2x2 mean.
        coarse = np.nanmean(full.reshape(256, 2, 256, 2), axis=(1, 3))
        err = np.nanmean(np.abs(coarse - approx))
        self.assertLess(err, 0.5 * np.nanstd(full), err)

    def test_random_windows_equal_the_materialized_output(self):
        rng = random.Random(7)
        for tif, desc in (self.emb, self.loss):
            ds = gdal.Open(desc)
            w, h = ds.RasterXSize, ds.RasterYSize
            full = read(tif)
            for i in range(6):
                xs, ys = rng.randint(1, w), rng.randint(1, h)
                x0, y0 = rng.randint(0, w - xs), rng.randint(0, h - ys)
                win = (x0, y0, xs, ys)
                want = full[:, y0:y0 + ys, x0:x0 + xs]
                # gdal_translate -srcwin
                out = os.path.join(self.sample.dir, "win%d.tif" % i)
                run("gdal_translate", "-q", "-srcwin", *win, desc, out)
                self.assertLessEqual(max_abs_diff(want, read(out)), TOL)
                # Python bindings: dataset, then one band (fresh handle so
                # that nothing comes from the block cache).
                got = gdal.Open(desc).ReadAsArray(*win)
                self.assertLessEqual(max_abs_diff(want, got), TOL, win)
                b = 1 + i % full.shape[0]
                fresh = gdal.Open(desc)  # kept: its band dies with it
                got = fresh.GetRasterBand(b).ReadAsArray(*win)
                self.assertLessEqual(max_abs_diff(want[b - 1], got), TOL, win)

    def test_reads_from_several_threads_are_safe_and_equal(self):
        tif, desc = self.loss
        full = read(tif)
        shared = gdal.Open(desc)  # opened once: the product is shared
        errors = []

        def worker(seed):
            try:
                rng = random.Random(seed)
                ds = gdal.Open(desc)  # GDAL's rule: a handle per thread
                for _ in range(8):
                    x0, y0 = rng.randint(0, 150), rng.randint(0, 150)
                    got = ds.ReadAsArray(x0, y0, 40, 40)
                    want = full[:, y0:y0 + 40, x0:x0 + 40]
                    if max_abs_diff(want, got) > TOL:
                        errors.append((seed, x0, y0))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(s,))
                   for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertLessEqual(max_abs_diff(full, shared.ReadAsArray()), TOL)

    def test_lazy_pictures_equal_mmcl_rgb_byte_for_byte(self):
        for tif, desc in self.pics:
            out = os.path.join(self.sample.dir,
                               os.path.basename(desc) + ".tif")
            run("gdal_translate", "-q", desc, out)
            written, lazy, copy = gdal.Open(tif), gdal.Open(desc), \
                gdal.Open(out)
            want = written.ReadAsArray()
            self.assertEqual(want.dtype, np.uint8)
            for got in (copy.ReadAsArray(), lazy.ReadAsArray()):
                self.assertTrue(np.array_equal(want, got),
                                "%s: %d bytes differ" %
                                (desc, int((want != got).sum())))
            for b in range(1, 5):
                wb, lb = written.GetRasterBand(b), lazy.GetRasterBand(b)
                self.assertEqual(lb.DataType, gdal.GDT_Byte)
                self.assertEqual(lb.GetDescription(), wb.GetDescription())
                self.assertEqual(lb.GetColorInterpretation(),
                                 wb.GetColorInterpretation())
                self.assertEqual(lb.GetNoDataValue(), wb.GetNoDataValue())
                self.assertEqual(
                    copy.GetRasterBand(b).GetColorInterpretation(),
                    wb.GetColorInterpretation())
            self.assertEqual(
                lazy.GetRasterBand(1).GetMaskFlags(),
                gdal.GMF_ALPHA | gdal.GMF_PER_DATASET)
            self.assertEqual(picture_metadata(lazy.GetMetadata("MMCL")),
                             picture_metadata(written.GetMetadata("MMCL")))
            # Windows that cut blocks, through the band and the dataset.
            rng = random.Random(3)
            for _ in range(4):
                xs, ys = rng.randint(1, 150), rng.randint(1, 150)
                x0, y0 = rng.randint(0, 192 - xs), rng.randint(0, 192 - ys)
                got = gdal.Open(desc).ReadAsArray(x0, y0, xs, ys)
                self.assertTrue(np.array_equal(
                    want[:, y0:y0 + ys, x0:x0 + xs], got), desc)

    def test_lazy_picture_writes_its_legend_and_refuses_what_does_not_apply(
            self):
        d = self.sample.path("legend_pic.mmcl.json")
        mmcl("rgb", "-q", "--lazy", self.loss[1], d)
        with open(d) as f:
            j = json.load(f)
        self.assertEqual(j["product"], "rgb")
        self.assertEqual(j["source"], "loss.mmcl.json")
        self.assertEqual(j["mode"], "colormap")
        self.assertEqual(j["legend"], "legend_pic.legend.png")
        self.assertTrue(os.path.exists(self.sample.path(
            "legend_pic.legend.png")))
        self.assertEqual(gdal.Open(d).GetMetadataItem("LEGEND", "MMCL"),
                         "legend_pic.legend.png")
        p = mmcl("rgb", "-q", "--lazy", "-of", "PNG", self.emb[0],
                 self.sample.path("x.mmcl.json"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("-of does not apply to a lazy descriptor (--lazy)",
                      p.stderr)
        p = mmcl("rgb", "-q", "--lazy", "--no-legend", self.emb[0], d,
                 check=False)
        self.assertIn("exists", p.stderr)
        # A picture of a picture is refused.
        p = mmcl("rgb", "-q", "--lazy", d, self.sample.path("y.mmcl.json"),
                 check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is a lazy rgb", p.stderr)

    def test_bad_picture_descriptors_fail_with_a_clear_message(self):
        with open(self.pics[0][1]) as f:
            good = json.load(f)
        good["source"] = self.emb[0]
        pca = dict(good["pca"])
        cases = {
            "rgb_missing_source": ({k: v for k, v in good.items()
                                    if k != "source"},
                                   'missing key "source"'),
            "rgb_absent_source": (dict(good, source=self.sample.path(
                "absent.tif")), "absent.tif"),
            "rgb_unknown_key": (dict(good, gamma=2), 'unknown key "gamma"'),
            "rgb_bad_mode": (dict(good, mode="hsv"), '"mode"'),
            "rgb_bad_band": (dict(good, bands=[1, 2, 9]), "no band 9"),
            "rgb_short_limits": (dict(good, limits=good["limits"][:2]),
                                 '"limits" must hold 3'),
            "rgb_flat_limits": (dict(good, limits=[[1, 1]] * 3),
                                "LOW < HIGH"),
            "rgb_bad_pca": (dict(good, pca=dict(pca, mean=[0.0])),
                            '"pca" must hold'),
            "rgb_bad_stretch": (dict(good, stretch=[50, 10]), '"stretch"'),
            "rgb_colormap_in_pca": (dict(good, colormap="viridis"),
                                    "only the colormap mode"),
            "rgb_bad_tile": (dict(good, tile=3), "out of range"),
        }
        for name, (content, expect) in cases.items():
            path = os.path.join(self.root, name + ".mmcl.json")
            with open(path, "w") as f:
                json.dump(content, f)
            self.expect_open_failure(path, expect)

    def test_threads_open_option_comes_from_the_option_table(self):
        drv = gdal.GetDriverByName("MMCL")
        xml = drv.GetMetadataItem(gdal.DMD_OPENOPTIONLIST)
        self.assertIn("name='THREADS'", xml)
        self.assertIn("max='256'", xml)
        tif, desc = self.emb
        ds = gdal.OpenEx(desc, open_options=["THREADS=1"])
        self.assertLessEqual(max_abs_diff(read(tif), ds.ReadAsArray()), TOL)
        ds = gdal.OpenEx(self.pics[0][1], open_options=["THREADS=2"])
        self.assertTrue(np.array_equal(read(self.pics[0][0]),
                                       ds.ReadAsArray()))
        for bad, expect in (("THREADS=-3", "THREADS"),
                            ("TILE=64", "unknown open option")):
            with self.assertRaises(RuntimeError) as cm:
                gdal.OpenEx(desc, open_options=[bad])
            self.assertIn(expect, str(cm.exception))

    def test_concurrent_reads_keep_the_blas_thread_count_and_the_pixels(self):
        # A separate process where OpenBLAS has 2 threads (the tests run
        # with OPENBLAS_NUM_THREADS=1 elsewhere): reads of several blocks
        # each run the library's tile pool, which sets BLAS to 1 thread;
        # concurrent reads must neither change the count under each other
        # nor leave it changed, and must give the written pixels. Two
        # handles per product and threads sharing one of them with
        # GDAL_NUM_THREADS-style reads are both exercised.
        script = r"""
import ctypes, sys, threading
import numpy as np
from osgeo import gdal
gdal.UseExceptions()
pairs = [(sys.argv[i], sys.argv[i + 1]) for i in range(1, len(sys.argv), 2)]
gdal.Open(pairs[0][1])  # loads the plugin, hence OpenBLAS
blas = ctypes.CDLL("libopenblas.so.0")
before = blas.openblas_get_num_threads()
want = [gdal.Open(t).ReadAsArray() for t, _ in pairs]
errors = []
def worker(k):
    try:
        t, d = pairs[k % len(pairs)]
        ds = gdal.Open(d)
        full = want[k % len(pairs)]
        for i in range(6):
            x0, y0 = (17 * k + 29 * i) % 60, (23 * k + 13 * i) % 60
            got = ds.ReadAsArray(x0, y0, 130, 130)
            exp = full[..., y0:y0 + 130, x0:x0 + 130]
            same = np.array_equal(np.nan_to_num(exp, nan=-9e9),
                                  np.nan_to_num(got, nan=-9e9))
            if not same:
                errors.append((k, i))
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
for t in threads: t.start()
for t in threads: t.join()
after = blas.openblas_get_num_threads()
print("blas", before, after, "errors", errors)
sys.exit(0 if not errors and before == after == 2 else 1)
"""
        env = dict(os.environ, OPENBLAS_NUM_THREADS="2")
        # 64-pixel blocks: a 130 x 130 window spans up to 9 of them.
        emb = self.sample.product("embed", "emb64", "--tile", "64")
        loss = self.sample.product("infoloss", "loss64", "--tile", "64")
        pic = self.sample.picture("pic64", emb[1], "--tile", "64")
        args = []
        for tif, desc in (emb, loss, pic):
            args += [tif, desc]
        p = run(sys.executable, "-c", script, *args, check=False, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_gdalinfo_shows_bands_descriptions_metadata_and_overviews(self):
        tif, desc = self.loss
        info = json.loads(run("gdalinfo", "-json", "-mdd", "MMCL", desc).stdout)
        self.assertEqual(info["driverShortName"], "MMCL")
        names = [b["description"] for b in info["bands"]]
        written = gdal.Open(tif)  # kept: its bands die with it
        self.assertEqual(names, [written.GetRasterBand(i + 1).GetDescription()
                                 for i in range(written.RasterCount)])
        self.assertEqual(names[0], "infoloss_optical")
        # Units and what each band means, as the written file has them.
        for i, b in enumerate(info["bands"]):
            wb = written.GetRasterBand(i + 1)
            self.assertEqual(b["unit"], "standardized band variance")
            self.assertEqual(b["unit"], wb.GetUnitType())
            self.assertEqual(b["metadata"][""]["LONG_NAME"],
                             wb.GetMetadataItem("LONG_NAME"))
        for b in info["bands"]:
            self.assertEqual(b["type"], "Float32")
            self.assertEqual(str(b["noDataValue"]).lower(), "nan")
        # The same MMCL metadata as the file, figures included.
        self.assertEqual(info["metadata"]["MMCL"],
                         gdal.Open(tif).GetMetadata("MMCL"))
        self.assertIn("R2_ALIGNED_OPTICAL", info["metadata"]["MMCL"])
        # Overviews: on a 600 x 400 lazy map (a VRT of the sample optical),
        # factors 2 and 4 (300 x 200 and 150 x 100).
        vrt = os.path.join(self.sample.dir, "big.vrt")
        run("gdal_translate", "-q", "-of", "VRT", "-outsize", "600", "400",
            self.sample.optical, vrt)
        big = os.path.join(self.sample.dir, "big.mmcl.json")
        mmcl("embed", "-q", "--lazy", self.sample.model, vrt, self.sample.sar,
             big)
        text = run("gdalinfo", big).stdout
        self.assertIn("Overviews: 300x200, 150x100", text)
        self.assertIn("Description = emb_000", text)

    def test_gdal_translate_to_cog_gives_a_valid_cog(self):
        from osgeo_utils.samples import validate_cloud_optimized_geotiff as v
        tif, desc = self.emb
        out = os.path.join(self.sample.dir, "emb_cog.tif")
        run("gdal_translate", "-q", "-of", "COG", desc, out)
        warnings, errors, _ = v.validate(out, full_check=True)
        self.assertEqual(errors, [])
        self.assertLessEqual(max_abs_diff(read(tif), read(out)), TOL)

    def test_bad_descriptors_fail_with_a_clear_message(self):
        with open(self.emb[1]) as f:
            good = json.load(f)
        good["model"] = self.sample.model
        # A 4-band raster that is not the SAR file itself.
        sar_copy = os.path.join(self.root, "sar_copy.tif")
        shutil.copyfile(self.sample.sar, sar_copy)
        cases = {
            "missing_sar": ({k: v for k, v in good.items() if k != "sar"},
                            'missing key "sar"'),
            "missing_product": ({k: v for k, v in good.items()
                                 if k != "product"}, 'missing key "product"'),
            "no_model": (dict(good, model=os.path.join(self.root, "no.mmcl")),
                         "no.mmcl"),
            "bad_rasters": (dict(good, optical=sar_copy),
                            "expects 8 optical bands"),
            "same_file": (dict(good, optical=self.sample.sar),
                          "is given as both optical and SAR"),
            "unknown_key": (dict(good, colour="red"), "unknown option"),
            "bad_value": (dict(good, modality="both"), "MODALITY"),
            "output_key": (dict(good, format="GTiff"), "does not apply"),
        }
        for name, (content, expect) in cases.items():
            path = os.path.join(self.root, name + ".mmcl.json")
            with open(path, "w") as f:
                json.dump(content, f)
            self.expect_open_failure(path, expect)
        path = os.path.join(self.root, "invalid.mmcl.json")
        with open(path, "w") as f:
            f.write('{"product": "embedding", "model": ')
        self.expect_open_failure(path, "not valid JSON")
        self.expect_open_failure(os.path.join(self.root, "absent.mmcl.json"),
                                 "cannot open descriptor")

    def test_descriptor_cycles_fail_cleanly_in_gdal_programs(self):
        """A descriptor that comes back to itself, directly, through
        another or through a VRT opened by GDAL: gdalinfo reports it
        (MMCL: ...) and exits non-zero, never crashes."""
        d = os.path.join(self.root, "cycles")
        os.makedirs(d, exist_ok=True)

        def put(name, content):
            path = os.path.join(d, name)
            with open(path, "w") as f:
                f.write(content if isinstance(content, str)
                        else json.dumps(content))
            return path

        self_ = put("self.mmcl.json", {"product": "rgb",
                                       "source": "self.mmcl.json"})
        a = put("a.mmcl.json", {"product": "rgb", "source": "b.mmcl.json"})
        put("b.mmcl.json", {"product": "rgb", "source": "a.mmcl.json"})
        self.expect_open_failure(self_, "descriptor '%s' refers to itself "
                                 "(a cycle)" % self_)
        self.expect_open_failure(a, "descriptor '%s' refers to itself "
                                 "through '%s' (a cycle)" %
                                 (a, os.path.join(d, "b.mmcl.json")))
        # A map whose optical is a VRT of the map itself, opened by GDAL
        # when the map is read (the input checks read a sample of it while
        # the map opens): the open fails, naming the cycle, ours or GDAL's
        # own guard against a dataset opened within its own open.
        with open(self.emb[1]) as f:
            m = json.load(f)
        m.update(model=self.sample.model, sar=self.sample.sar,
                 optical="loop.vrt")
        mpath = put("loop.mmcl.json", m)
        opt = gdal.Open(self.sample.optical)
        bands = "".join(
            '<VRTRasterBand dataType="Float32" band="%d"><SimpleSource>'
            '<SourceFilename relativeToVRT="1">loop.mmcl.json'
            '</SourceFilename><SourceBand>1</SourceBand>'
            '<SourceProperties RasterXSize="%d" RasterYSize="%d" '
            'DataType="Float32" BlockXSize="256" BlockYSize="256"/>'
            '</SimpleSource></VRTRasterBand>' %
            (b + 1, opt.RasterXSize, opt.RasterYSize)
            for b in range(opt.RasterCount))
        put("loop.vrt", '<VRTDataset rasterXSize="%d" rasterYSize="%d">'
            '<SRS>%s</SRS><GeoTransform>%s</GeoTransform>%s</VRTDataset>' %
            (opt.RasterXSize, opt.RasterYSize,
             opt.GetProjection().replace('"', "&quot;"),
             ", ".join(repr(v) for v in opt.GetGeoTransform()), bands))
        opt = None
        p = run("gdal_translate", "-q", mpath,
                os.path.join(d, "loop_out.tif"), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertLess(p.returncode, 128, "crashed: " + p.stderr)
        self.assertRegex(p.stderr, "(descriptor '%s' refers to itself \\(a "
                         "cycle\\)|GDALOpen\\(\\) called on %s recursively)" %
                         (re.escape(mpath), re.escape(mpath)))

    def test_remote_paths_only_when_allowed(self):
        """A descriptor naming /vsicurl/ is refused by name; the
        configuration option and the open option let GDAL try it."""
        with open(self.emb[1]) as f:
            m = json.load(f)
        url = "/vsicurl/http://127.0.0.1:9/x.tif"
        m.update(model=self.sample.model, sar=self.sample.sar, optical=url)
        path = os.path.join(self.root, "remote.mmcl.json")
        with open(path, "w") as f:
            json.dump(m, f)
        self.expect_open_failure(path, "\"optical\" '%s' is a network path"
                                 % url)
        for extra in (["--config", "MMCL_DESCRIPTOR_ALLOW_REMOTE", "YES"],
                      ["-oo", "ALLOW_REMOTE=YES"]):
            p = run("gdalinfo", *extra, path, check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertLess(p.returncode, 128, "crashed: " + p.stderr)
            self.assertNotIn("is a network path", p.stderr)
            self.assertIn("cannot open optical raster '%s'" % url, p.stderr)
        p = run("gdalinfo", "--format", "MMCL")
        self.assertIn("ALLOW_REMOTE", p.stdout)

    def expect_open_failure(self, path, expect):
        with self.assertRaises(RuntimeError) as cm:
            gdal.Open(path)
        self.assertIn(expect, str(cm.exception))
        p = run("gdalinfo", path, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertLess(p.returncode, 128, "gdalinfo crashed: " + p.stderr)
        self.assertIn("MMCL:", p.stderr)
        self.assertIn(expect, p.stderr)

    def test_lazy_refuses_what_does_not_apply_and_existing_outputs(self):
        p = mmcl("embed", "-q", "--lazy", "-of", "COG", self.sample.model,
                 self.sample.optical, self.sample.sar,
                 os.path.join(self.root, "x.mmcl.json"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("-of does not apply to a lazy descriptor (--lazy)",
                      p.stderr)
        p = mmcl("embed", "-q", "--lazy", self.sample.model,
                 self.sample.optical, self.sample.sar, self.emb[1],
                 check=False)
        self.assertIn("exists", p.stderr)
        # A descriptor that would not open is never written.
        bad = os.path.join(self.root, "never.mmcl.json")
        p = mmcl("embed", "-q", "--lazy", self.sample.model, self.sample.sar,
                 self.sample.sar, bad, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertFalse(os.path.exists(bad))

    def test_qgis_reads_correct_statistics(self):
        if os.environ.get("MMCL_SANITIZE"):
            self.skipTest("sanitizer build: QGIS cannot load the "
                          "instrumented plugin")
        if not os.path.exists(QGIS_PROCESS):
            self.skipTest("QGIS is not installed (%s is absent; apt-get "
                          "install qgis qgis-providers python3-qgis)" %
                          QGIS_PROCESS)
        tif, desc = self.loss
        home = tempfile.mkdtemp(prefix="mmcl-qgis-home-", dir=self.root)
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=home,
                   XDG_RUNTIME_DIR=home)
        p = run(QGIS_PROCESS, "--json", "run", "native:rasterlayerstatistics",
                "--", "INPUT=" + desc, "BAND=1", env=env)
        start = p.stdout.index("{")
        res = json.loads(p.stdout[start:])["results"]
        a = read(tif)[0].astype(np.float64)
        a = a[np.isfinite(a)]
        self.assertAlmostEqual(res["MEAN"], a.mean(), places=5)
        self.assertAlmostEqual(res["MIN"], a.min(), places=5)
        self.assertAlmostEqual(res["MAX"], a.max(), places=5)
        self.assertAlmostEqual(res["STD_DEV"], a.std(), places=4)


if __name__ == "__main__":
    unittest.main()
