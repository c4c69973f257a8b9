# SPDX-License-Identifier: MIT
"""Maps open right in QGIS: every raster mmcl writes (embed, infoloss,
align; GeoTIFF and COG) and every lazy descriptor (through the GDAL plugin)
is loaded by PyQGIS 3.22, headless, with the renderer its QGIS style
(x.qml, x.mmcl.qml) asks for (also when Processing loads it), with the
ranges of `mmcl rgb`'s stretch; QGIS draws each one (QgsMapRendererSequentialJob) into a PNG whose
colours are the style's; and `mmcl rgb`'s legend says what it shows.

    MMCL=build/mmcl /usr/bin/python3 tests/qgis/test_qgis_styles.py -v

The lazy descriptors load through the GDAL plugin in $MMCL_PLUGIN_DIR
(default: the plugin/ folder beside the program).

MMCL_STYLE_PICTURES=folder keeps the rendered PNGs there. Skips, saying so,
without PyQGIS (Debian python3-qgis).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
MMCL = os.path.abspath(os.environ.get("MMCL",
                                      os.path.join(SOURCE, "build", "mmcl")))
BINARY = os.environ.get("MMCL_BINARY_DIR", os.path.dirname(MMCL))
# The GDAL plugin's folder, for the lazy descriptors; empty: not built (or
# a sanitizer build, whose plugin QGIS cannot load).
PLUGIN_DIR = os.environ.get("MMCL_PLUGIN_DIR",
                            os.path.join(BINARY, "plugin")
                            if "MMCL_BINARY_DIR" not in os.environ else "")
LAZY = bool(PLUGIN_DIR) and os.path.exists(
    os.path.join(PLUGIN_DIR, "gdal_MMCL.so"))
SAMPLE = os.path.join(SOURCE, "sample_data")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable
TRAIN = ["--objective", "cca", "--dim", "4", "--patch", "3", "--samples",
         "2000"]


def pyqgis_available():
    p = subprocess.run([PYTHON, "-c", "import qgis.core"],
                       capture_output=True, text=True)
    return p.returncode == 0


def pyqgis_main(out_json, picture_dir, layers):
    """In a PyQGIS process: each layer loaded as QGIS loads a file, its
    renderer described, and drawn into picture_dir/<name>.png."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import (QgsApplication, QgsMapRendererSequentialJob,
                           QgsMapSettings, QgsRasterLayer)
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor
    app = QgsApplication([], False)
    app.initQgis()
    facts = {}
    for path in layers:
        layer = QgsRasterLayer(path, os.path.basename(path))
        f = {"valid": layer.isValid()}
        r = layer.renderer() if layer.isValid() else None
        if r is not None:
            f["type"] = r.type()
            if r.type() == "singlebandpseudocolor":
                shader = r.shader().rasterShaderFunction()
                f["band"] = r.band()
                f["min"] = r.classificationMin()
                f["max"] = r.classificationMax()
                f["ramp"] = [[i.value, i.color.name()]
                             for i in shader.colorRampItemList()]
            elif r.type() == "multibandcolor":
                f["bands"] = [r.redBand(), r.greenBand(), r.blueBand()]
                f["ranges"] = [[ce.minimumValue(), ce.maximumValue()]
                               for ce in (r.redContrastEnhancement(),
                                          r.greenContrastEnhancement(),
                                          r.blueContrastEnhancement())]
            elif r.type() == "singlebandgray":
                ce = r.contrastEnhancement()
                f["band"] = r.grayBand()
                f["range"] = [ce.minimumValue(), ce.maximumValue()]
            settings = QgsMapSettings()
            settings.setLayers([layer])
            settings.setDestinationCrs(layer.crs())
            settings.setExtent(layer.extent())
            # Two screen pixels a raster pixel: screen (i, j) shows raster
            # pixel (i // 2, j // 2).
            settings.setOutputSize(QSize(2 * layer.width(),
                                         2 * layer.height()))
            settings.setBackgroundColor(QColor(255, 255, 255))
            job = QgsMapRendererSequentialJob(settings)
            job.start()
            job.waitForFinished()
            png = os.path.join(picture_dir,
                               os.path.basename(path).replace(".", "_") +
                               ".png")
            f["picture"] = png if job.renderedImage().save(png) else None
        facts[path] = f
    with open(out_json, "w") as fp:
        json.dump(facts, fp)
    # QGIS 3.22 may crash while tearing down with the GDAL plugin loaded;
    # everything is written, so leave without the tear-down.
    sys.stdout.flush()
    os._exit(0)


def processing_main(out_json, model, optical, sar, out):
    """In a PyQGIS process: mmcl:infoloss run as the Processing dialog runs
    it (processing.runAndLoadResults), and the renderer of the layer it
    loads into the project."""
    sys.path.insert(0, HERE)
    import pyqgis_helper
    app, provider = pyqgis_helper.start_qgis()
    import processing
    from qgis.core import QgsProject
    processing.runAndLoadResults("mmcl:infoloss", {
        "MODEL": model, "OPTICAL": [optical], "SAR": sar, "OUT": out})
    types = {layer.source(): layer.renderer().type()
             for layer in QgsProject.instance().mapLayers().values()
             if hasattr(layer, "renderer") and layer.renderer()}
    with open(out_json, "w") as fp:
        json.dump(types, fp)
    sys.stdout.flush()
    os._exit(0)


def read_png(path):
    ds = gdal.Open(path)
    a = ds.ReadAsArray()
    return np.moveaxis(a[:3], 0, -1).astype(np.int64)


def stats(path, band):
    ds = gdal.Open(path)
    md = ds.GetRasterBand(band).GetMetadata()
    return {k: float(md["STATISTICS_" + k])
            for k in ("MINIMUM", "MAXIMUM", "MEAN", "STDDEV")}


def expected_range(path, band, centred):
    """The 2nd and 98th percentiles of the band's valid values (NumPy's
    linear interpolation), symmetric about 0 when @p centred: the stretch
    of `mmcl rgb`."""
    ds = gdal.Open(path)
    a = ds.GetRasterBand(band).ReadAsArray().astype(np.float64)
    lo, hi = np.percentile(a[np.isfinite(a)], [2, 98])
    if centred:
        a = max(abs(lo), abs(hi))
        return -a, a
    return lo, hi


def order_gap(path, band, p):
    """The spacing of the band's sorted valid values about its p-th
    percentile: where the values are sparse (a small raster's tails), the
    style's histogram percentile (p % of the count) and NumPy's (linear
    between order statistics) may differ by that much."""
    ds = gdal.Open(path)
    a = ds.GetRasterBand(band).ReadAsArray().astype(np.float64)
    v = np.sort(a[np.isfinite(a)])
    k = int(p / 100.0 * (v.size - 1))
    lo, hi = max(k - 1, 0), min(k + 2, v.size - 1)
    return float(np.diff(v[lo:hi + 1]).max()) if hi > lo else 0.0


@unittest.skipUnless(pyqgis_available(),
                     "PyQGIS is not installed (apt-get install qgis "
                     "python3-qgis)")
class Styles(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="mmcl-styles-")
        d = cls.d = cls.root
        shutil.copyfile(os.path.join(SAMPLE, "optical.tif"),
                        os.path.join(d, "opt.tif"))
        shutil.copyfile(os.path.join(SAMPLE, "sar.tif"),
                        os.path.join(d, "sar.tif"))
        steps = [
            ["train", "-q"] + TRAIN + ["opt.tif", "sar.tif", "model.mmcl"],
            ["embed", "-q", "model.mmcl", "opt.tif", "sar.tif", "emb.tif"],
            ["embed", "-q", "-of", "COG", "model.mmcl", "opt.tif", "sar.tif",
             "embcog.tif"],
            ["infoloss", "-q", "model.mmcl", "opt.tif", "sar.tif",
             "loss.tif"],
            ["infoloss", "-q", "-of", "COG", "model.mmcl", "opt.tif",
             "sar.tif", "losscog.tif"],
            ["align", "-q", "opt.tif", "sar.tif", "al.tif"],
            ["embed", "-q", "--lazy", "model.mmcl", "opt.tif", "sar.tif",
             "emb.mmcl.json"],
            ["infoloss", "-q", "--lazy", "model.mmcl", "opt.tif", "sar.tif",
             "loss.mmcl.json"],
            ["rgb", "-q", "--bands", "structured_excess_optical", "loss.tif",
             "lpic.tif"],
        ]
        for s in steps:
            p = subprocess.run([MMCL] + s, cwd=d, capture_output=True,
                               text=True)
            if p.returncode != 0:
                raise RuntimeError("mmcl %s: %s" % (s, p.stderr))
        cls.pictures = os.environ.get("MMCL_STYLE_PICTURES") or \
            os.path.join(d, "pictures")
        os.makedirs(cls.pictures, exist_ok=True)
        names = ["emb.tif", "embcog.tif", "loss.tif", "losscog.tif",
                 "al.tif"]
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
                   HOME=os.path.join(d, "home"), OPENBLAS_NUM_THREADS="1")
        if LAZY:
            names += ["emb.mmcl.json", "loss.mmcl.json"]
            env["GDAL_DRIVER_PATH"] = PLUGIN_DIR
        os.makedirs(env["HOME"], exist_ok=True)
        facts = os.path.join(d, "facts.json")
        p = subprocess.run([PYTHON, os.path.abspath(__file__), "--pyqgis",
                            facts, cls.pictures] +
                           [os.path.join(d, n) for n in names],
                           capture_output=True, text=True, env=env,
                           timeout=600)
        if p.returncode != 0:
            raise RuntimeError("PyQGIS (exit %d): %s\n%s" %
                               (p.returncode, p.stdout, p.stderr))
        with open(facts) as fp:
            cls.facts = {os.path.basename(k): v
                         for k, v in json.load(fp).items()}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.d, name)

    def test_every_output_has_its_style_beside_it(self):
        for n in ("emb", "embcog", "loss", "losscog", "al", "emb.mmcl",
                  "loss.mmcl"):
            with self.subTest(style=n):
                with open(self.path(n + ".qml")) as f:
                    text = f.read()
                self.assertTrue(text.startswith("<!DOCTYPE qgis"))
        # A picture is drawn as what it is (RGBA): no style.
        self.assertFalse(os.path.exists(self.path("lpic.qml")))

    def test_statistics_are_stored_with_every_band(self):
        for n in ("emb.tif", "embcog.tif", "loss.tif", "losscog.tif",
                  "al.tif"):
            with self.subTest(raster=n):
                ds = gdal.Open(self.path(n))
                for b in range(1, ds.RasterCount + 1):
                    md = ds.GetRasterBand(b).GetMetadata()
                    for k in ("MINIMUM", "MAXIMUM", "MEAN", "STDDEV"):
                        self.assertIn("STATISTICS_" + k, md, (n, b))
                    a = ds.GetRasterBand(b).ReadAsArray().astype(np.float64)
                    a = a[np.isfinite(a)]
                    self.assertAlmostEqual(
                        float(md["STATISTICS_MEAN"]), a.mean(), places=4)
                    self.assertAlmostEqual(float(md["STATISTICS_MAXIMUM"]),
                                           float(a.max()), places=9)
        # In the GeoTIFF itself: no side file to lose.
        self.assertFalse(os.path.exists(self.path("loss.tif.aux.xml")))
        self.assertFalse(os.path.exists(self.path("emb.tif.aux.xml")))

    def check_loss(self, name, raster):
        f = self.facts[name]
        self.assertTrue(f["valid"], name)
        self.assertEqual(f["type"], "singlebandpseudocolor", name)
        ds = gdal.Open(self.path(raster))
        self.assertEqual(
            ds.GetRasterBand(f["band"]).GetDescription(),
            "structured_excess_optical")
        # Signed: centred on 0.
        self.assertAlmostEqual(f["min"], -f["max"], places=9)
        self.assertGreater(f["max"], 0)
        # Dark blue at the low end, white in the middle, dark red at the
        # high end (rdbu_r, as `mmcl rgb` draws the band).
        self.assertEqual(f["ramp"][0][1], "#053061")
        self.assertEqual(f["ramp"][-1][1], "#67001f")
        self.assertAlmostEqual(f["ramp"][0][0], f["min"], places=6)
        self.assertAlmostEqual(f["ramp"][-1][0], f["max"], places=6)
        return f

    def test_infoloss_map_is_its_headline_band_centred_on_0(self):
        f = self.check_loss("loss.tif", "loss.tif")
        lo, hi = expected_range(self.path("loss.tif"), f["band"], 1)
        # Read from a histogram of 16384 buckets over the band's range.
        tol = 2 * (stats(self.path("loss.tif"), f["band"])["MAXIMUM"] -
                   stats(self.path("loss.tif"), f["band"])["MINIMUM"]) / 16384
        self.assertAlmostEqual(f["min"], lo, delta=tol)
        self.assertAlmostEqual(f["max"], hi, delta=tol)
        # The range of `mmcl rgb`'s picture and legend of the band.
        with open(self.path("lpic.legend.json")) as fp:
            legend = json.load(fp)
        self.assertAlmostEqual(f["max"], legend["max"], delta=tol)
        self.check_loss("losscog.tif", "losscog.tif")

    def need_lazy(self):
        if not LAZY:
            self.skipTest("the GDAL plugin is not built here (or is a "
                          "sanitizer build's, which QGIS cannot load)")

    def test_lazy_infoloss_descriptor_too(self):
        self.need_lazy()
        f = self.check_loss("loss.mmcl.json", "loss.tif")
        # The range of the written map (the descriptor's comes from its
        # smallest overview, here the whole of the small scene).
        w = self.facts["loss.tif"]
        self.assertAlmostEqual(f["max"], w["max"], delta=0.01 * w["max"])

    def test_embedding_is_its_first_three_components(self):
        for n in ("emb.tif", "embcog.tif", "emb.mmcl.json"):
            if n not in self.facts:
                continue  # no plugin: the written ones only
            with self.subTest(layer=n):
                f = self.facts[n]
                self.assertTrue(f["valid"])
                self.assertEqual(f["type"], "multibandcolor")
                self.assertEqual(f["bands"], [1, 2, 3])
                for c in range(3):
                    lo, hi = expected_range(self.path("emb.tif"), c + 1, 0)
                    st = stats(self.path("emb.tif"), c + 1)
                    tol = 2 * (st["MAXIMUM"] - st["MINIMUM"]) / 16384
                    self.assertAlmostEqual(f["ranges"][c][0], lo, delta=tol)
                    self.assertAlmostEqual(f["ranges"][c][1], hi, delta=tol)

    def test_aligned_sar_is_grey(self):
        f = self.facts["al.tif"]
        self.assertEqual(f["type"], "singlebandgray")
        self.assertEqual(f["band"], 1)
        lo, hi = expected_range(self.path("al.tif"), 1, 0)
        st = stats(self.path("al.tif"), 1)
        tol = 2 * (st["MAXIMUM"] - st["MINIMUM"]) / 16384
        self.assertAlmostEqual(f["range"][0], lo, delta=max(
            tol, order_gap(self.path("al.tif"), 1, 2)))
        self.assertAlmostEqual(f["range"][1], hi, delta=max(
            tol, order_gap(self.path("al.tif"), 1, 98)))

    def test_qgis_draws_the_loss_map_in_its_ramp(self):
        """Each pixel QGIS draws has the colour the style's ramp gives its
        value (linear between the stops, the end colours beyond them),
        white (the background) where the map has no value."""
        ds = gdal.Open(self.path("loss.tif"))
        for n in ("loss.tif", "loss.mmcl.json"):
            if n not in self.facts:
                continue  # no plugin: the written one only
            with self.subTest(layer=n):
                f = self.facts[n]
                v = ds.GetRasterBand(f["band"]).ReadAsArray().astype(
                    np.float64)
                v = np.repeat(np.repeat(v, 2, axis=0), 2, axis=1)
                stops = np.array([s[0] for s in f["ramp"]])
                cols = np.array([[int(s[1][k:k + 2], 16) for k in (1, 3, 5)]
                                 for s in f["ramp"]])
                want = np.full(v.shape + (3,), 255.0)
                ok = np.isfinite(v)
                for c in range(3):
                    want[..., c][ok] = np.interp(v[ok], stops, cols[:, c])
                got = read_png(f["picture"])
                self.assertEqual(got.shape, want.shape)
                close = np.all(np.abs(got - want) <= 3, axis=2)
                self.assertGreater(close.mean(), 0.99)
                # Not a grey ramp: the map's high values are red.
                hot = v > 0.5 * f["max"]
                self.assertGreater(hot.mean(), 0.01)
                self.assertTrue(np.all(got[hot][:, 0] > got[hot][:, 2] + 40))

    def test_qgis_draws_the_embedding_in_colour(self):
        for n in ("emb.tif", "emb.mmcl.json"):
            if n not in self.facts:
                continue  # no plugin: the written one only
            with self.subTest(layer=n):
                px = read_png(self.facts[n]["picture"]).reshape(-1, 3)
                self.assertGreater(len(np.unique(px, axis=0)), 500)
                self.assertGreater(np.mean(np.ptp(px, axis=1) > 30), 0.2)

    def test_processing_loads_its_result_with_the_style(self):
        """Processing loads results without their default style: the mmcl
        provider applies it."""
        out = self.path("ploss.tif")
        facts = self.path("processing.json")
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
                   HOME=os.path.join(self.d, "home"),
                   QGIS_PLUGINPATH=os.path.join(SOURCE, "qgis"),
                   MMCL_PROGRAM=MMCL, OPENBLAS_NUM_THREADS="1")
        p = subprocess.run([PYTHON, os.path.abspath(__file__), "--processing",
                            facts, self.path("model.mmcl"),
                            self.path("opt.tif"), self.path("sar.tif"), out],
                           capture_output=True, text=True, env=env,
                           timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(facts) as fp:
            types = json.load(fp)
        self.assertEqual(types, {out: "singlebandpseudocolor"})

    def test_legend_says_what_it_shows(self):
        with open(self.path("lpic.legend.json")) as f:
            j = json.load(f)
        self.assertEqual(j["band"], "structured_excess_optical")
        self.assertEqual(j["title"],
                         "structured_excess_optical (optical modality)")
        self.assertEqual(j["units"], "standardized band variance")
        self.assertEqual(j["font"], "DejaVu Sans")
        self.assertTrue(j["clipped"]["below_min"])
        self.assertTrue(j["clipped"]["above_max"])
        self.assertEqual(len(j["ticks"]), 5)
        self.assertAlmostEqual(j["min"], -j["max"])
        img = read_png(self.path("lpic.legend.png"))
        self.assertEqual(img.shape[:2], (120, 480))
        bar = j["bar"]
        ink = (img.sum(axis=2) < 3 * 128)
        # Title above the bar, labels and notes under it.
        self.assertGreater(ink[:bar["y"] - 8].sum(), 200)
        self.assertGreater(ink[bar["y"] + bar["height"] + 7:].sum(), 500)
        mid = bar["y"] + bar["height"] // 2
        # The clipping triangles in the end colours (rdbu_r's ends).
        self.assertEqual(list(img[mid, bar["x"] - 7]), [5, 48, 97])
        self.assertEqual(list(img[mid, bar["x"] + bar["width"] + 6]),
                         [103, 0, 31])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--pyqgis":
        pyqgis_main(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--processing":
        processing_main(*sys.argv[2:7])
    else:
        unittest.main()
