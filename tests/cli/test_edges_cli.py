# SPDX-License-Identifier: MIT
"""The program speaks the command-line language: --help shows the flags a
user types, messages name the flag that was given (--modality, not
MODALITY), the figures come after the progress bar, every progress bar
reaches 100, and every output carries the mmcl version in its metadata,
with the product and the version also in GDAL's default domain (what
gdalinfo and QGIS show without -mdd MMCL).

    MMCL=build/mmcl GDAL_DRIVER_PATH=build/plugin \
        python3 tests/cli/test_edges_cli.py -v
"""
import json
import os
import re
import shutil
import subprocess
import unittest

from osgeo import gdal

from mmcl_cli import MMCL, SAMPLE, Workdir, run

gdal.UseExceptions()

TRAIN = ["--objective", "cca", "--dim", "2", "--patch", "3", "--samples",
         "2000"]


def usage():
    return json.loads(run("--json-usage").stdout)


class Help(unittest.TestCase):
    def test_help_shows_flags_as_typed(self):
        """No option table syntax (--sar-db=db, --no-legend=NO) in --help:
        a switch is shown as the user types it."""
        for cmd in usage()["commands"]:
            with self.subTest(command=cmd["command"]):
                text = run(cmd["command"], "--help").stdout
                self.assertNotRegex(text, r"--[a-z][a-z-]*=\S")
        train = run("train", "--help").stdout
        self.assertRegex(train, r"--sar-db, --sar-linear")
        self.assertRegex(train, r"--sar-transform none\|db\|linear")
        self.assertRegex(run("rgb", "--help").stdout, r"(?m)^  --no-legend ")


class Messages(Workdir):
    """A refused value is named by the flag that gave it."""

    def setUp(self):
        super().setUp()
        for name in ("optical.tif", "sar.tif"):
            shutil.copyfile(os.path.join(SAMPLE, name), self.path(name))

    def refused(self, *args):
        before = sorted(os.listdir(self.dir))
        p = subprocess.run([MMCL] + list(args), cwd=self.dir,
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(sorted(os.listdir(self.dir)), before)
        return p.stderr

    def test_enum_value_names_the_flag(self):
        err = self.refused("embed", "--modality", "foo", "m.mmcl",
                           "optical.tif", "sar.tif", "e.tif")
        self.assertIn("ERROR 1: mmcl embed: --modality must be one of "
                      "optical|sar|joint, got 'foo'", err)
        self.assertNotIn("MODALITY", err)

    def test_range_names_the_flag(self):
        err = self.refused("train", "--dim", "0", "optical.tif", "sar.tif",
                           "m.mmcl")
        self.assertIn("ERROR 1: mmcl train: --dim 0 is out of range "
                      "[1, 1024]", err)
        self.assertNotIn("DIM", err)

    def test_number_names_the_flag(self):
        err = self.refused("align", "-et", "abc", "optical.tif", "sar.tif",
                           "a.tif")
        self.assertIn("ERROR 1: mmcl align: -et expects a number, got 'abc'",
                      err)

    def test_operation_message_names_the_flag(self):
        err = self.refused("synth", "--size", "64", "--sar-srs", "nonsense",
                           "scene")
        self.assertIn("--sar-srs 'nonsense' is not a CRS", err)
        self.assertNotIn("SAR_SRS", err)

    def test_rgb_message_names_the_flag(self):
        run("synth", "-q", "--size", "64", self.path("s"))
        err = self.refused("rgb", "--stretch", "5", self.path("s/sar.tif"),
                           "p.tif")
        self.assertIn("--stretch must be two percentiles", err)
        self.assertNotIn("STRETCH", err)


def merged(args, cwd):
    """Runs mmcl with stdout and stderr in one pipe, as a log or a
    terminal gets them."""
    p = subprocess.run([MMCL] + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return p


class Progress(Workdir):
    @classmethod
    def setUpClass(cls):
        cls.plugin = bool(os.environ.get("GDAL_DRIVER_PATH"))

    def setUp(self):
        super().setUp()
        for name in ("optical.tif", "sar.tif"):
            shutil.copyfile(os.path.join(SAMPLE, name), self.path(name))

    def bar_reaches_100(self, args, bar=True):
        """With @p bar, the command must show a progress bar; every bar it
        shows must reach 100."""
        p = merged(args, self.dir)
        self.assertEqual(p.returncode, 0, p.stdout)
        if bar:
            self.assertIn("...100 - done.\n", p.stdout, p.stdout)
        # Nothing printed into the bar: every bar ends its own line.
        for line in p.stdout.splitlines():
            if line.startswith("0..."):
                self.assertRegex(line, r"^0[.0-9]*\.\.\.100 - done\.$",
                                 p.stdout)
        return p.stdout

    def test_figures_follow_the_bar(self):
        out = self.bar_reaches_100(["train"] + TRAIN +
                                   ["optical.tif", "sar.tif", "m.mmcl"])
        self.assertNotRegex(out, r"\d[a-z]")
        done = out.index("100 - done.")
        self.assertGreater(out.index("canonical correlations"), done)

    def test_every_bar_reaches_100(self):
        run("train", "-q", *TRAIN, self.path("optical.tif"),
            self.path("sar.tif"), self.path("m.mmcl"))
        pair = ["optical.tif", "sar.tif"]
        commands = [["align"] + pair + ["a.tif"],
                    ["synth", "--size", "64", "scene"],
                    ["embed", "m.mmcl"] + pair + ["e.tif"],
                    ["infoloss", "m.mmcl"] + pair + ["l.tif"],
                    ["rgb", "e.tif", "p.tif"],
                    ["rgb", "l.tif", "pl.tif"]]
        if self.plugin:
            commands += [["embed", "--lazy", "m.mmcl"] + pair +
                         ["e.mmcl.json"],
                         ["rgb", "e.mmcl.json", "pe.tif"],
                         ["rgb", "--lazy", "e.tif", "p.mmcl.json"],
                         ["rgb", "--lazy", "e.mmcl.json", "pp.mmcl.json"]]
        for c in commands:
            with self.subTest(command=" ".join(c)):
                # Writing a descriptor is instant: a bar is optional.
                self.bar_reaches_100(c, bar=c[:2] != ["embed", "--lazy"])


class Metadata(Workdir):
    """The version in every output, and the product and the version in the
    default domain too."""

    def test_every_output_has_the_version(self):
        d = self.dir
        opt, sar = os.path.join(SAMPLE, "optical.tif"), \
            os.path.join(SAMPLE, "sar.tif")
        m = self.path("m.mmcl")
        run("train", "-q", *TRAIN, opt, sar, m)
        run("synth", "-q", "--size", "64", self.path("scene"))
        run("align", "-q", opt, sar, self.path("a.tif"))
        run("align", "-q", "-of", "COG", opt, sar, self.path("cog.tif"))
        run("embed", "-q", m, opt, sar, self.path("e.tif"))
        run("infoloss", "-q", m, opt, sar, self.path("l.tif"))
        run("rgb", "-q", self.path("e.tif"), self.path("p.tif"))
        run("rgb", "-q", self.path("l.tif"), self.path("pl.png"))
        outputs = {"scene/optical.tif": "synthetic_optical",
                   "scene/sar.tif": "synthetic_sar",
                   "scene/labels.tif": "synthetic_labels",
                   "scene/truth.tif": "synthetic_truth",
                   "a.tif": "aligned_sar", "cog.tif": "aligned_sar",
                   "e.tif": "embedding", "l.tif": "infoloss",
                   "p.tif": "rgb", "pl.png": "rgb"}
        if os.environ.get("GDAL_DRIVER_PATH"):
            run("embed", "-q", "--lazy", m, opt, sar, self.path("e.mmcl.json"))
            run("infoloss", "-q", "--lazy", m, opt, sar,
                self.path("l.mmcl.json"))
            run("rgb", "-q", "--lazy", self.path("l.mmcl.json"),
                self.path("plz.mmcl.json"))
            outputs.update({"e.mmcl.json": "embedding",
                            "l.mmcl.json": "infoloss",
                            "plz.mmcl.json": "rgb"})
        version = usage()["version"]
        for name, product in outputs.items():
            with self.subTest(output=name):
                ds = gdal.Open(os.path.join(d, name))
                self.assertEqual(ds.GetMetadataItem("MMCL_VERSION", "MMCL"),
                                 version)
                self.assertEqual(ds.GetMetadataItem("PRODUCT", "MMCL"),
                                 product)
                self.assertEqual(ds.GetMetadataItem("MMCL_VERSION"), version)
                self.assertEqual(ds.GetMetadataItem("MMCL_PRODUCT"), product)
                ds = None
        info = subprocess.run(["gdalinfo", self.path("l.tif")],
                              capture_output=True, text=True).stdout
        self.assertIn("MMCL_PRODUCT=infoloss", info)
        self.assertIn("MMCL_VERSION=" + version, info)


class LegendInset(Workdir):
    """rgb --legend-inset: the colour scale drawn into the picture's lower
    left corner, pixel for pixel the legend written beside it, and the
    rest of the picture as without it."""

    def setUp(self):
        super().setUp()
        # A 600 x 600 single-band raster: room for the 480 x 120 inset.
        src = gdal.GetDriverByName("GTiff").Create(self.path("b.tif"), 600,
                                                   600, 1, gdal.GDT_Float32)
        src.SetGeoTransform([500000, 10, 0, 4800000, 0, -10])
        import numpy as np
        y, x = np.mgrid[0:600, 0:600]
        src.GetRasterBand(1).WriteArray((np.sin(x / 40.0) + y / 300.0)
                                        .astype(np.float32))
        src.GetRasterBand(1).SetDescription("excess_optical")
        src = None

    def test_inset_is_the_legend_and_leaves_the_rest(self):
        import numpy as np
        run("rgb", "-q", "-of", "PNG", "--legend-inset", self.path("b.tif"),
            self.path("in.png"))
        run("rgb", "-q", "-of", "PNG", self.path("b.tif"),
            self.path("plain.png"))
        ds = gdal.Open(self.path("in.png"))
        inset = ds.ReadAsArray()
        self.assertEqual(ds.GetMetadataItem("LEGEND_INSET", "MMCL"),
                         "8,472,480,120")
        plain = gdal.Open(self.path("plain.png")).ReadAsArray()
        legend = gdal.Open(self.path("in.legend.png")).ReadAsArray()
        self.assertEqual(legend.shape, (4, 120, 480))
        np.testing.assert_array_equal(inset[:, 472:592, 8:488], legend)
        outside = np.ones((600, 600), bool)
        outside[472:592, 8:488] = False
        np.testing.assert_array_equal(inset[:, outside], plain[:, outside])

    def test_inset_refused_where_it_cannot_be(self):
        run("synth", "-q", "--size", "192", self.path("s"))
        optical = os.path.join(self.path("s"), "optical.tif")
        for args, message in (
                (["--mode", "pca", optical], "only a picture of one band"),
                (["--lazy", self.path("b.tif")], "not a lazy one")):
            out = "p.mmcl.json" if "--lazy" in args else "p.png"
            p = subprocess.run([MMCL, "rgb", "-q", "--legend-inset"] + args +
                               [self.path(out)],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(message, p.stderr)
            self.assertFalse(os.path.exists(self.path(out)))
        small = self.path("small.tif")
        p = subprocess.run([MMCL, "rgb", "-q", "--legend-inset", "--bands",
                            "B1", optical, small], capture_output=True,
                           text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("too small for the 480 x 120 colour scale inset",
                      p.stderr)
        self.assertFalse(os.path.exists(small))


if __name__ == "__main__":
    unittest.main()
