# SPDX-License-Identifier: MIT
"""The QGIS plugin (qgis/mmcl/, the "mmcl" Processing provider) in a real
QGIS 3.22 from Debian, headless: through /usr/bin/qgis_process.bin (not the
wrapper script, which fails on Debian), with QT_QPA_PLATFORM=offscreen, a
throw-away HOME and QGIS_PLUGINPATH=qgis/, and through PyQGIS scripts
(tests/qgis/pyqgis_helper.py).

- every command has its algorithm, with the program's defaults and choices;
- synth -> train -> embed -> infoloss -> rgb run by qgis_process writes,
  byte for byte, what the same chain run with mmcl writes;
- processing.run("mmcl:embed") gives a layer with the right extent, CRS
  and bands, and the Graphical Modeler chains the algorithms;
- a failing run exits non-zero with mmcl's message;
- cancelling stops the program and leaves no output;
- `cmake --install` and the qgis_zip target ship a plugin QGIS loads.

    MMCL=build/mmcl MMCL_BINARY_DIR=build python3 tests/qgis/test_qgis_provider.py -v

Skips, saying so, when /usr/bin/qgis_process.bin is absent.
"""
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
MMCL = os.path.abspath(os.environ.get("MMCL",
                                      os.path.join(SOURCE, "build", "mmcl")))
BINARY = os.environ.get("MMCL_BINARY_DIR", os.path.dirname(MMCL))
PLUGINS = os.path.join(SOURCE, "qgis")
QGIS_PROCESS = "/usr/bin/qgis_process.bin"
HELPER = os.path.join(HERE, "pyqgis_helper.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable
COMMANDS = ("align", "synth", "train", "embed", "infoloss", "audit", "probe",
            "rgb", "coreg")
# The scene of the chain: small, so that the whole file runs in a minute.
SIZE, SEED, DIM = 64, 3, 4


def run(*args, check=True, env=None, timeout=300):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                       env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" %
                             (" ".join(map(str, args)), p.returncode,
                              p.stdout[-3000:], p.stderr[-3000:]))
    return p


def mmcl(*args):
    return run(MMCL, *args)


def max_abs_diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    na, nb = np.isnan(a), np.isnan(b)
    assert np.array_equal(na, nb), "NaN (nodata) patterns differ"
    return float(np.max(np.abs(a[~na] - b[~na]))) if (~na).any() else 0.0


@unittest.skipUnless(os.path.exists(QGIS_PROCESS),
                     "QGIS is not installed (%s is absent; apt-get install "
                     "qgis qgis-providers python3-qgis)" % QGIS_PROCESS)
class QgisProvider(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="mmcl-qgis-")
        home = os.path.join(cls.root, "home")
        os.makedirs(home)
        cls.env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=home,
                       XDG_RUNTIME_DIR=home, QGIS_PLUGINPATH=PLUGINS,
                       MMCL_PROGRAM=MMCL, PYTHONDONTWRITEBYTECODE="1")
        cls.qgis("plugins", "enable", "mmcl")
        cls.usage = json.loads(mmcl("--json-usage").stdout)
        # The chain run with the program directly.
        d = cls.direct = os.path.join(cls.root, "direct")
        os.makedirs(d)
        scene = os.path.join(d, "scene")
        opt, sar = os.path.join(scene, "optical.tif"), \
            os.path.join(scene, "sar.tif")
        mmcl("synth", "-q", scene, "--size", SIZE, "--seed", SEED)
        mmcl("train", "-q", "--objective", "cca", "--dim", DIM, opt, sar,
             os.path.join(d, "model.mmcl"))
        mmcl("embed", "-q", os.path.join(d, "model.mmcl"), opt, sar,
             os.path.join(d, "emb.tif"))
        mmcl("infoloss", "-q", "--non-redundancy", "--report",
             os.path.join(d, "loss.json"), os.path.join(d, "model.mmcl"),
             opt, sar, os.path.join(d, "loss.tif"))
        mmcl("rgb", "-q", os.path.join(d, "emb.tif"),
             os.path.join(d, "emb_rgb.tif"))
        mmcl("rgb", "-q", "--bands", "1", "-of", "PNG",
             os.path.join(d, "loss.tif"), os.path.join(d, "loss_rgb.png"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    @classmethod
    def qgis(cls, *args, check=True, env=None):
        return run(QGIS_PROCESS, *args, check=check, env=env or cls.env)

    @classmethod
    def qgis_json(cls, *args, env=None):
        p = cls.qgis("--json", *args, env=env)
        return json.loads(p.stdout[p.stdout.index("{"):])

    def helper(self, *args):
        p = run(PYTHON, HELPER, *args, env=self.env)
        return json.loads(p.stdout.strip().splitlines()[-1])

    # Algorithms and their parameters --------------------------------------

    def test_list_shows_every_mmcl_algorithm(self):
        text = self.qgis("list").stdout
        for c in COMMANDS:
            self.assertIn("mmcl:%s\t" % c, text)

    def test_help_shows_embed_parameters_with_their_defaults(self):
        text = self.qgis("help", "mmcl:embed").stdout
        for name in ("MODEL:", "OPTICAL:", "SAR:", "OUT:", "MODALITY:",
                     "TILE:", "THREADS:"):
            self.assertIn(name, text)
        self.assertIn("[default: joint]", text)
        self.assertIn("[default: 256]", text)
        self.assertIn("{optical|sar|joint} [default: joint]", text)
        self.assertNotIn("OVERWRITE:", text)

    def test_every_parameter_has_the_programs_default_and_choices(self):
        for cmd in self.usage["commands"]:
            if cmd["command"] not in COMMANDS:
                continue
            with self.subTest(command=cmd["command"]):
                params = self.qgis_json(
                    "help", "mmcl:" + cmd["command"])["parameters"]
                for p in cmd["positional"]:
                    self.assertIn(p["name"], params)
                for o in cmd["options"]:
                    name = o["name"]
                    if name == "OVERWRITE":
                        self.assertNotIn(name, params)
                        continue
                    q = params[name]
                    default = o.get("default")
                    if name in ("FORMAT", "REPORT"):
                        self.assertIn(q["default_value"], (None, ""))
                    elif o["type"] == "enum":
                        self.assertEqual(list(q["raw_definition"]["options"]),
                                         o["choices"])
                        self.assertEqual(q["default_value"], default)
                    elif o["type"] == "bool":
                        self.assertEqual(q["default_value"], default == "YES")
                    elif o["type"] in ("int", "double"):
                        if default is None:
                            self.assertIsNone(q["default_value"])
                            self.assertTrue(q["optional"])
                        else:
                            self.assertEqual(float(q["default_value"]),
                                             float(default))
                        raw = q["raw_definition"]
                        if o.get("min") is not None:
                            self.assertEqual(raw["min"], float(o["min"]))
                    else:
                        self.assertEqual(q["default_value"] or None, default)

    def test_plugin_version_is_the_programs(self):
        with open(os.path.join(PLUGINS, "mmcl", "metadata.txt")) as f:
            meta = dict(line.strip().split("=", 1) for line in f
                        if "=" in line)
        self.assertEqual(meta["version"], self.usage["version"])
        self.assertEqual(meta["hasProcessingProvider"], "yes")
        self.assertEqual(meta["qgisMinimumVersion"], "3.22")

    # The chain --------------------------------------------------------------

    def test_chain_through_qgis_process_writes_what_mmcl_writes(self):
        q = os.path.join(self.root, "qgis")
        os.makedirs(q)
        scene = os.path.join(q, "scene")
        opt, sar = os.path.join(scene, "optical.tif"), \
            os.path.join(scene, "sar.tif")
        model = os.path.join(q, "model.mmcl")
        res = self.qgis_json("run", "mmcl:synth", "--", "OUTDIR=" + scene,
                             "SIZE=%d" % SIZE, "SEED=%d" % SEED)["results"]
        self.assertEqual(res["OPTICAL"], opt)
        res = self.qgis_json("run", "mmcl:train", "--", "OPTICAL=" + opt,
                             "SAR=" + sar, "OBJECTIVE=cca", "DIM=%d" % DIM,
                             "MODEL=" + model)["results"]
        self.assertEqual(res["MODEL"], model)
        figures = json.loads(res["FIGURES"])
        self.assertAlmostEqual(res["LOSS_FRACTION_OPTICAL"],
                               figures["sample_r2"]["optical"]["loss_fraction"])
        self.qgis_json("run", "mmcl:embed", "--", "MODEL=" + model,
                       "OPTICAL=" + opt, "SAR=" + sar,
                       "OUT=" + os.path.join(q, "emb.tif"))
        res = self.qgis_json("run", "mmcl:infoloss", "--", "MODEL=" + model,
                             "OPTICAL=" + opt, "SAR=" + sar,
                             "NON_REDUNDANCY=true",
                             "REPORT=" + os.path.join(q, "loss.json"),
                             "OUT=" + os.path.join(q, "loss.tif"))["results"]
        with open(os.path.join(self.direct, "loss.json")) as f:
            report = json.load(f)
        self.assertAlmostEqual(res["LOSS_FRACTION_SAR"],
                               report["sar"]["loss_fraction"], places=12)
        self.qgis_json("run", "mmcl:rgb", "--",
                       "IN=" + os.path.join(q, "emb.tif"),
                       "OUT=" + os.path.join(q, "emb_rgb.tif"))
        res = self.qgis_json("run", "mmcl:rgb", "--",
                             "IN=" + os.path.join(q, "loss.tif"), "BANDS=1",
                             "OUT=" + os.path.join(q, "loss_rgb.png")
                             )["results"]
        self.assertEqual(res["LEGEND"], os.path.join(q, "loss_rgb.legend.png"))

        files = ["scene/optical.tif", "scene/sar.tif", "scene/labels.tif",
                 "scene/truth.tif", "scene/synth.json", "model.mmcl",
                 "emb.tif", "loss.tif", "loss.json", "emb_rgb.tif",
                 "loss_rgb.png", "loss_rgb.legend.png", "loss_rgb.legend.json"]
        for name in files:
            with self.subTest(file=name):
                a, b = os.path.join(self.direct, name), os.path.join(q, name)
                self.assertTrue(os.path.exists(b), b)
                if filecmp.cmp(a, b, shallow=False):
                    continue
                if name.endswith(".legend.json"):
                    # Names the input picture as it was given: only the
                    # folders may differ.
                    with open(a) as fa, open(b) as fb:
                        ja, jb = json.load(fa), json.load(fb)
                    self.assertEqual(os.path.basename(ja.pop("source")),
                                     os.path.basename(jb.pop("source")))
                    self.assertEqual(ja, jb)
                    continue
                # Not the same bytes: the rasters must then agree to 1e-6.
                self.assertTrue(name.endswith(".tif"), name + " differs")
                self.assertLessEqual(max_abs_diff(
                    gdal.Open(a).ReadAsArray(), gdal.Open(b).ReadAsArray()),
                    1e-6, name)

    def test_sar_as_several_layers_goes_as_sar_flags(self):
        """SAR=VV SAR=VH ... (one single-band layer per band of the
        scene's SAR): the program gets one --sar each and writes the
        embedding of the stacked SAR."""
        q = os.path.join(self.root, "sar_layers")
        os.makedirs(q)
        scene = os.path.join(self.direct, "scene")
        sar = os.path.join(scene, "sar.tif")
        bands = []
        for b in range(1, gdal.Open(sar).RasterCount + 1):
            bands.append(os.path.join(q, "sar_%d.tif" % b))
            gdal.Translate(bands[-1], sar, bandList=[b])
        self.assertGreater(len(bands), 1)
        out = os.path.join(q, "emb.tif")
        self.qgis_json("run", "mmcl:embed", "--",
                       "MODEL=" + os.path.join(self.direct, "model.mmcl"),
                       "OPTICAL=" + os.path.join(scene, "optical.tif"),
                       *["SAR=" + b for b in bands], "OUT=" + out)
        self.assertEqual(max_abs_diff(
            gdal.Open(out).ReadAsArray(),
            gdal.Open(os.path.join(self.direct, "emb.tif")).ReadAsArray()),
            0.0)
        # One layer only: still the positional SAR (a 1-band SAR does not
        # fit this model, which the program says).
        p = self.qgis("run", "mmcl:embed", "--",
                      "MODEL=" + os.path.join(self.direct, "model.mmcl"),
                      "OPTICAL=" + os.path.join(scene, "optical.tif"),
                      "SAR=" + bands[0], "OUT=" + os.path.join(q, "e1.tif"),
                      check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("SAR", p.stdout + p.stderr)
        self.assertFalse(os.path.exists(os.path.join(q, "e1.tif")))

    def test_shift_field_is_a_raster_layer_given_to_the_program(self):
        """SAR_SHIFT_FIELD is an optional raster layer (a shift field of
        mmcl coreg): mmcl:align with it writes what mmcl align
        --sar-shift-field writes."""
        sys.path.insert(0, os.path.join(SOURCE, "tests", "cli"))
        from test_sar_shift import write_field
        q = os.path.join(self.root, "shift")
        os.makedirs(q)
        scene = os.path.join(self.direct, "scene")
        opt, sar = (os.path.join(scene, n) for n in ("optical.tif",
                                                     "sar.tif"))
        field = os.path.join(q, "field.tif")
        write_field(field, opt, 16, np.linspace(-1, 1, 4)[None, :], 0.5)
        mmcl("align", "-q", opt, sar, os.path.join(q, "direct.tif"),
             "--sar-shift-field", field)
        self.qgis_json("run", "mmcl:align", "--", "OPTICAL=" + opt,
                       "SAR=" + sar, "SAR_SHIFT_FIELD=" + field,
                       "OUT=" + os.path.join(q, "qgis.tif"))
        self.assertEqual(
            gdal.Open(os.path.join(q, "qgis.tif")).ReadAsArray().tobytes(),
            gdal.Open(os.path.join(q, "direct.tif")).ReadAsArray().tobytes())
    def probe_inputs(self):
        """The required parameters of mmcl:probe on the chain's scene."""
        d = self.direct
        return ["MODEL=" + os.path.join(d, "model.mmcl"),
                "OPTICAL=" + os.path.join(d, "scene", "optical.tif"),
                "SAR=" + os.path.join(d, "scene", "sar.tif"),
                "LABELS=" + os.path.join(d, "scene", "labels.tif")]

    def test_probe_writes_an_html_report_and_its_figures(self):
        d = self.direct
        out = os.path.join(self.root, "probe.html")
        report = os.path.join(self.root, "probe.json")
        res = self.qgis_json(
            "run", "mmcl:probe", "--", *self.probe_inputs(),
            "BLOCKS=2", "OUT=" + out, "REPORT=" + report)["results"]
        want = json.loads(mmcl(
            "probe", "--json", "--blocks", "2", os.path.join(d, "model.mmcl"),
            os.path.join(d, "scene", "optical.tif"),
            os.path.join(d, "scene", "sar.tif"),
            os.path.join(d, "scene", "labels.tif")).stdout)
        with open(report) as f:
            self.assertEqual(json.load(f), want)
        self.assertEqual(res["GAP_OPTICAL"], want["gap"]["optical"])
        with open(out) as f:
            page = f.read()
        self.assertIn("<table>", page)
        self.assertIn("aligned_optical", page)

    def test_probe_runs_headless_with_only_the_required_arguments(self):
        """No HTML report asked for: none written, the figures returned;
        CSV and MAP when asked for: what mmcl writes with --csv and
        --map."""
        d = self.direct
        q = os.path.join(self.root, "probe_headless")
        os.makedirs(q)
        inputs = self.probe_inputs()
        res = self.qgis_json("run", "mmcl:probe", "--", *inputs)["results"]
        self.assertFalse(res.get("OUT"))
        self.assertEqual(os.listdir(q), [])
        want_dir = os.path.join(self.root, "probe_direct")
        os.makedirs(want_dir)
        want = json.loads(mmcl(
            "probe", "--json", "--csv", os.path.join(want_dir, "p.csv"),
            "--map", os.path.join(want_dir, "p.tif"),
            os.path.join(d, "model.mmcl"),
            os.path.join(d, "scene", "optical.tif"),
            os.path.join(d, "scene", "sar.tif"),
            os.path.join(d, "scene", "labels.tif")).stdout)
        self.assertEqual(res["GAP_OPTICAL"], want["gap"]["optical"])
        self.assertEqual(res["BASELINE_MACRO_F1"],
                         want["baseline"]["macro_f1"])
        csv_path, map_path = os.path.join(q, "p.csv"), os.path.join(q, "p.tif")
        res = self.qgis_json("run", "mmcl:probe", "--", *inputs,
                             "CSV=" + csv_path, "MAP=" + map_path)["results"]
        self.assertEqual(res["CSV"], csv_path)
        self.assertEqual(res["MAP"], map_path)
        self.assertEqual(sorted(os.listdir(q)), ["p.csv", "p.tif"])
        self.assertTrue(filecmp.cmp(csv_path, os.path.join(want_dir, "p.csv"),
                                    shallow=False))
        np.testing.assert_array_equal(
            gdal.Open(map_path).ReadAsArray(),
            gdal.Open(os.path.join(want_dir, "p.tif")).ReadAsArray())

    def test_probe_compares_embedding_rasters(self):
        """EMBEDDING as a '|'-separated list ([NAME=]FILE each) and
        MAP_REPRESENTATION naming one: what mmcl probe --embedding ...
        reports and maps."""
        d = self.direct
        q = os.path.join(self.root, "probe_embedding")
        os.makedirs(q)
        emb = os.path.join(d, "emb.tif")
        report = os.path.join(q, "p.json")
        map_path = os.path.join(q, "p.tif")
        res = self.qgis_json(
            "run", "mmcl:probe", "--", *self.probe_inputs(),
            "EMBEDDING=%s|second=%s" % (emb, emb),
            "MAP_REPRESENTATION=second", "MAP=" + map_path,
            "REPORT=" + report)["results"]
        self.assertEqual(res["MAP"], map_path)
        want_map = os.path.join(self.root, "probe_embedding_direct.tif")
        want = json.loads(mmcl(
            "probe", "--json", "--embedding", emb, "--embedding",
            "second=" + emb, "--map-representation", "second", "--map",
            want_map, os.path.join(d, "model.mmcl"),
            os.path.join(d, "scene", "optical.tif"),
            os.path.join(d, "scene", "sar.tif"),
            os.path.join(d, "scene", "labels.tif")).stdout)
        with open(report) as f:
            got = json.load(f)
        got["outputs"].pop("map")
        want["outputs"].pop("map")
        self.assertEqual(got, want)
        self.assertEqual(list(got["embeddings"]), ["emb", "second"])
        self.assertEqual(got["representations"]["emb"]["confusion"],
                         got["representations"]["joint"]["confusion"])
        m = gdal.Open(map_path)
        self.assertEqual(m.GetMetadataItem("REPRESENTATION", "MMCL"),
                         "second")
        np.testing.assert_array_equal(m.ReadAsArray(),
                                      gdal.Open(want_map).ReadAsArray())

    def test_audit_writes_what_mmcl_audit_writes_and_its_lazy_descriptor(self):
        """mmcl:audit of an embedding raster: the map and the figures of
        mmcl audit; with LAZY, the descriptor mmcl audit --lazy writes
        (no report asked of it)."""
        d = self.direct
        emb = os.path.join(d, "emb.tif")
        opt = os.path.join(d, "scene", "optical.tif")
        sar = os.path.join(d, "scene", "sar.tif")
        q = os.path.join(self.root, "audit_qgis")
        want = os.path.join(self.root, "audit_direct")
        os.makedirs(q)
        os.makedirs(want)
        params = ["EMBEDDING=" + emb, "OPTICAL=" + opt, "SAR=" + sar]
        res = self.qgis_json("run", "mmcl:audit", "--", *params,
                             "OUT=" + os.path.join(q, "a.tif"))["results"]
        mmcl("audit", "-q", "--report", os.path.join(want, "a.json"), emb,
             opt, sar, os.path.join(want, "a.tif"))
        np.testing.assert_array_equal(
            gdal.Open(os.path.join(q, "a.tif")).ReadAsArray(),
            gdal.Open(os.path.join(want, "a.tif")).ReadAsArray())
        with open(os.path.join(want, "a.json")) as f:
            report = json.load(f)
        for m in ("optical", "sar"):
            self.assertEqual(res["R2_ALIGNED_" + m.upper()],
                             report[m]["cross_validated"]["r2_aligned"])
            self.assertEqual(res["LOSS_FRACTION_" + m.upper()],
                             report[m]["loss_fraction"])
        # Lazy: the descriptor, as mmcl audit --lazy writes it.
        res = self.qgis_json("run", "mmcl:audit", "--", *params, "LAZY=true",
                             "OUT=" + os.path.join(q, "a.mmcl.json"))
        mmcl("audit", "-q", "--lazy", emb, opt, sar,
             os.path.join(want, "a.mmcl.json"))
        with open(os.path.join(q, "a.mmcl.json")) as f:
            got = json.load(f)
        with open(os.path.join(want, "a.mmcl.json")) as f:
            self.assertEqual(got, json.load(f))
        self.assertEqual(got["product"], "audit")

    # PyQGIS -------------------------------------------------------------------

    def test_pyqgis_processing_run_embed_returns_the_layer(self):
        d = self.direct
        out = os.path.join(self.root, "pyqgis_emb.tif")
        facts = self.helper("embed", os.path.join(d, "model.mmcl"),
                            os.path.join(d, "scene", "optical.tif"),
                            os.path.join(d, "scene", "sar.tif"), out)
        self.assertEqual(facts["result"]["OUT"], out)
        ds = gdal.Open(os.path.join(d, "emb.tif"))
        gt = ds.GetGeoTransform()
        extent = [gt[0], gt[3] + gt[5] * ds.RasterYSize,
                  gt[0] + gt[1] * ds.RasterXSize, gt[3]]
        for layer in (facts["layer"], facts["project_layer"]):
            self.assertTrue(layer["valid"])
            self.assertEqual(layer["bands"], DIM)
            self.assertEqual(layer["bands"], ds.RasterCount)
            self.assertEqual((layer["width"], layer["height"]),
                             (ds.RasterXSize, ds.RasterYSize))
            self.assertEqual(layer["crs"], "EPSG:32631")
            np.testing.assert_allclose(layer["extent"], extent, atol=1e-6)
        self.assertTrue(filecmp.cmp(out, os.path.join(d, "emb.tif"),
                                    shallow=False))

    def test_graphical_modeler_chains_synth_train_embed(self):
        work = os.path.join(self.root, "modeler")
        out = os.path.join(self.root, "modeler_emb.tif")
        facts = self.helper("modeler", work, SIZE, SEED, DIM, out)
        self.assertEqual(facts["parameters"], ["embed:embedding"])
        inputs = facts["result"]["CHILD_INPUTS"]
        self.assertEqual(inputs["embed"]["MODEL"],
                         os.path.join(work, "model.mmcl"))
        self.assertEqual(facts["layer"]["bands"], DIM)
        self.assertTrue(filecmp.cmp(out, os.path.join(self.direct, "emb.tif"),
                                    shallow=False))

    # Failures and cancel --------------------------------------------------

    def expect_failure(self, args, message):
        p = self.qgis("run", *args, check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn(message, p.stdout + p.stderr)

    def test_a_failing_run_exits_non_zero_with_mmcls_message(self):
        d = self.direct
        model = os.path.join(d, "model.mmcl")
        sar = os.path.join(d, "scene", "sar.tif")
        out = os.path.join(self.root, "failed.tif")
        # The SAR given as optical: the model's SAR band names say so.
        self.expect_failure(
            ["mmcl:embed", "--", "MODEL=" + model, "OPTICAL=" + sar,
             "SAR=" + os.path.join(d, "scene", "labels.tif"), "OUT=" + out],
            "ERROR 1: mmcl embed: the optical and SAR look swapped: the "
            "optical input '%s' has the bands the model was trained with as "
            "SAR" % sar)
        # A missing model file.
        self.expect_failure(
            ["mmcl:embed", "--", "MODEL=" + os.path.join(d, "absent.mmcl"),
             "OPTICAL=" + sar, "SAR=" + sar, "OUT=" + out], "absent.mmcl")
        # A value the program refuses.
        self.expect_failure(
            ["mmcl:align", "--", "OPTICAL=" + os.path.join(d, "scene",
                                                           "optical.tif"),
             "SAR=" + sar, "SPECKLE=lee:4", "OUT=" + out], "mmcl align:")
        self.assertFalse(os.path.exists(out))

    def test_a_missing_input_raster_fails_with_a_message(self):
        d = self.direct
        self.expect_failure(
            ["mmcl:embed", "--", "MODEL=" + os.path.join(d, "model.mmcl"),
             "OPTICAL=" + os.path.join(d, "absent.tif"),
             "SAR=" + os.path.join(d, "scene", "sar.tif"),
             "OUT=" + os.path.join(self.root, "x.tif")], "absent.tif")

    def empty_path(self):
        """A PATH with no mmcl on it."""
        path = os.path.join(self.root, "empty-path")
        os.makedirs(path, exist_ok=True)
        return path

    def test_a_missing_program_is_reported(self):
        env = dict(self.env, MMCL_PROGRAM="", PATH=self.empty_path())
        p = self.qgis("list", env=env)
        self.assertNotIn("mmcl:embed", p.stdout)
        self.assertIn("mmcl program was not found", p.stdout + p.stderr)
        env["MMCL_PROGRAM"] = os.path.join(self.root, "no-mmcl")
        p = self.qgis("list", env=env)
        self.assertNotIn("mmcl:embed", p.stdout)
        self.assertIn("no-mmcl --json-usage", p.stdout + p.stderr)

    def test_cancel_stops_the_program_and_leaves_no_output(self):
        big = os.path.join(self.root, "big")
        opt, sar = os.path.join(big, "optical.tif"), \
            os.path.join(big, "sar.tif")
        model = os.path.join(self.root, "big.mmcl")
        mmcl("synth", "-q", big, "--size", 1024)
        mmcl("train", "-q", "--objective", "cca", "--dim", 16, "--patch", 7,
             "--samples", 4000, opt, sar, model)
        out_dir = os.path.join(self.root, "cancelled")
        os.makedirs(out_dir)
        facts = self.helper("cancel", model, opt, sar,
                            os.path.join(out_dir, "emb.tif"))
        self.assertIn("cancelled", facts["error"] or "")
        self.assertTrue(facts["children"], "no mmcl process was seen")
        self.assertEqual(facts["alive"], [])
        self.assertLess(facts["progress"][-1], 100.0)
        # mmcl had started writing (a temporary file), and nothing is left.
        self.assertTrue(any(".mmcl-tmp-" in n for n in facts["during"]),
                        facts["during"])
        self.assertEqual(facts["left"], [])
        self.assertLess(facts["seconds_after_cancel"], 5.0)

    # Rough edges: help, choices, an error once, the program found -----------

    def test_help_is_plain_text(self):
        text = self.qgis("help", "mmcl:embed").stdout
        for tag in ("<p>", "<b>", "<br>", "<code>", "&#x27;", "&lt;"):
            self.assertNotIn(tag, text)
        self.assertIn("MODALITY: which encoder", text)
        self.assertIn("GDAL's MMCL driver", text)
        self.assertIn("Write the embedding map of a model on a raster pair "
                      "(mmcl embed).", text)

    def test_choices_are_taken_by_name_and_by_number(self):
        """qgis_process help numbers the choices: MODALITY=2 is joint, as
        MODALITY=joint; MODALITY=0 is optical."""
        d = self.direct
        q = os.path.join(self.root, "choices")
        os.makedirs(q)
        pair = ["MODEL=" + os.path.join(d, "model.mmcl"),
                "OPTICAL=" + os.path.join(d, "scene", "optical.tif"),
                "SAR=" + os.path.join(d, "scene", "sar.tif")]
        for value, name in (("2", "n2"), ("joint", "joint"), ("0", "n0"),
                            ("optical", "optical")):
            self.qgis_json("run", "mmcl:embed", "--", *pair,
                           "MODALITY=" + value,
                           "OUT=" + os.path.join(q, name + ".tif"))
        emb = gdal.Open(os.path.join(d, "emb.tif")).ReadAsArray()
        for name in ("n2", "joint"):
            self.assertEqual(max_abs_diff(gdal.Open(os.path.join(
                q, name + ".tif")).ReadAsArray(), emb), 0.0)
        a = gdal.Open(os.path.join(q, "n0.tif")).ReadAsArray()
        self.assertEqual(max_abs_diff(a, gdal.Open(os.path.join(
            q, "optical.tif")).ReadAsArray()), 0.0)
        self.assertGreater(max_abs_diff(a, emb), 0.0)
        p = self.qgis("run", "mmcl:embed", "--", *pair, "MODALITY=3",
                      "OUT=" + os.path.join(q, "n3.tif"), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("MODALITY", p.stdout + p.stderr)
        self.assertFalse(os.path.exists(os.path.join(q, "n3.tif")))

    def test_an_error_is_shown_once(self):
        d = self.direct
        sar = os.path.join(d, "scene", "sar.tif")
        args = ["run", "mmcl:embed", "--",
                "MODEL=" + os.path.join(d, "model.mmcl"), "OPTICAL=" + sar,
                "SAR=" + os.path.join(d, "scene", "labels.tif"),
                "OUT=" + os.path.join(self.root, "once.tif")]
        for mode in ([], ["--json"]):
            with self.subTest(mode=mode):
                p = self.qgis(*(mode + args), check=False)
                self.assertNotEqual(p.returncode, 0)
                self.assertEqual((p.stdout + p.stderr).count(
                    "the optical and SAR look swapped"), 1,
                    p.stdout + p.stderr)

    def unzipped_plugin(self, name):
        """The qgis_zip plugin, unpacked as Install from ZIP does."""
        if not os.path.exists(os.path.join(BINARY, "CMakeCache.txt")):
            self.skipTest("MMCL_BINARY_DIR is not a build folder")
        run("cmake", "--build", BINARY, "--target", "qgis_zip")
        zip_path = os.path.join(BINARY, "mmcl-qgis-%s.zip" %
                                self.usage["version"])
        plugins = os.path.join(self.root, name)
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(plugins)
        home = os.path.join(self.root, "home-" + name)
        os.makedirs(home)
        env = dict(self.env, HOME=home, XDG_RUNTIME_DIR=home,
                   QGIS_PLUGINPATH=plugins, PATH=self.empty_path())
        del env["MMCL_PROGRAM"]
        self.qgis("plugins", "enable", "mmcl", env=env)
        return plugins, env

    def test_zip_finds_the_program_it_was_built_with(self):
        """No MMCL_PROGRAM, no mmcl on PATH, nothing set: the plugin from
        the ZIP runs the program of the build that made the ZIP."""
        plugins, env = self.unzipped_plugin("zip-plugins")
        res = self.qgis_json("help", "mmcl:synth", env=env)
        self.assertIn("SIZE", res["parameters"])
        self.assertIn(self.usage["version"],
                      res["provider_details"]["long_name"])

    def test_a_program_found_nowhere_is_a_clear_message(self):
        plugins, env = self.unzipped_plugin("zip-nowhere")
        recorded = os.path.join(plugins, "mmcl", "program_path.txt")
        with open(recorded, "w") as f:
            f.write("/nonexistent/bin/mmcl\n")
        p = self.qgis("list", env=env)
        text = p.stdout + p.stderr
        self.assertNotIn("mmcl:embed", text)
        self.assertIn("the mmcl program was not found", text)
        self.assertIn("/nonexistent/bin/mmcl", text)
        self.assertIn("Settings > Options > Processing > Providers > mmcl",
                      text)
        self.assertIn("MMCL_PROGRAM", text)

    # Installing -----------------------------------------------------------

    def test_install_and_zip_ship_a_plugin_qgis_loads(self):
        cache = os.path.join(BINARY, "CMakeCache.txt")
        if not os.path.exists(cache):
            self.skipTest("MMCL_BINARY_DIR is not a build folder")
        with open(cache) as f:
            if "MMCL_BUILD_QGIS:BOOL=ON" not in f.read():
                self.skipTest("configured with MMCL_BUILD_QGIS=OFF: the "
                              "plugin is not installed")
        prefix = os.path.join(self.root, "prefix")
        run("cmake", "--install", BINARY, "--prefix", prefix)
        plugins = os.path.join(prefix, "share", "mmcl", "qgis-plugins")
        self.assertTrue(os.path.exists(os.path.join(plugins, "mmcl",
                                                    "program_path.txt")))
        # No MMCL_PROGRAM and no mmcl on PATH: the plugin finds the
        # installed program.
        home = os.path.join(self.root, "home-installed")
        os.makedirs(home)
        env = dict(self.env, HOME=home, XDG_RUNTIME_DIR=home,
                   QGIS_PLUGINPATH=plugins, PATH=self.empty_path())
        del env["MMCL_PROGRAM"]
        self.qgis("plugins", "enable", "mmcl", env=env)
        res = self.qgis_json("help", "mmcl:synth", env=env)
        self.assertIn("SIZE", res["parameters"])
        self.assertIn(self.usage["version"],
                      res["provider_details"]["long_name"])

        run("cmake", "--build", BINARY, "--target", "qgis_zip")
        zip_path = os.path.join(BINARY, "mmcl-qgis-%s.zip" %
                                self.usage["version"])
        with zipfile.ZipFile(zip_path) as z:
            names = set(z.namelist())
        for f in ("__init__.py", "metadata.txt", "provider.py",
                  "algorithm.py", "runner.py", "styles.py", "plugin.py",
                  "icon.svg"):
            self.assertIn("mmcl/" + f, names)
        self.assertFalse([n for n in names if "__pycache__" in n])


if __name__ == "__main__":
    unittest.main()
