# SPDX-License-Identifier: MIT
"""Correcting the shift restores the science (issue 16), end to end with
the commands a user runs:

    mmcl synth   one scene unshifted (256 x 256 px, 64 land-cover classes
                 with sharp edges, seen by both modalities, as
                 test_coreg.py and test_rgb_coreg.py make it), and the
                 same scene (same seed) with its SAR misregistered by
                 --sar-shift 1.5,-0.7, by --sar-shift 2,-1 and by a smooth
                 --sar-shift-field 2;
    mmcl coreg   the shift field of each shifted scene (32 px blocks);
    mmcl train   cca, k = 2, 3 x 3 patches (and a short clip run on the
                 integer shift);
    mmcl infoloss --report   the maps and their figures,

on the unshifted scene (the reference), on each shifted scene as it is
(uncorrected), and on each shifted scene with --sar-shift-field FIELD
given to train and infoloss (corrected). The figures, per modality: the
loss fraction of the report, and the oracle figure, the Spearman
correlation of the map's structured loss with synth's true energy of the
modality's specific factors inside the regions where they are switched
on (mmcl_cli.specific_figures, as test_audit.py and test_noise.py check
it). The table of the three cases is printed.

What holds, and is asserted: corrected, every figure is within 10 % of
the unshifted scene's; uncorrected, the loss fractions are not (they move
by 17 % to 170 %). Two exceptions, measured and not hidden:

- The oracle figures hardly move uncorrected (0.5 % to 3 % for the
  fractional shifts, 9 % to 10 % for 2,-1), so that they are printed but
  their move is not asserted: inside the specific regions the shift adds
  loss along every class edge, specific or not, which raises the
  structured loss there without much reordering of the specific energy
  the rank correlation measures. Their correction is asserted.
- With the constant 1.5,-0.7 the optical loss fraction comes back within
  14 % (asserted within 20 %), not 10 %: synth makes a fractional shift
  by sampling the noiseless SAR bilinearly, and the correction samples it
  bilinearly again, so the corrected SAR's sharp class edges are blurred
  twice at half a pixel, which the unshifted scene's are not. With the
  integer shift 2,-1 both samplings are exact and every figure comes back
  within 5 % (clip: 7 %).

`mmcl audit` of an embedding on the optical ground (synth's shared
factors, which truth.tif holds) is the other check: the SAR is corrected,
never the embedding. With 2,-1 the SAR's cross-validated loss fraction
goes from 0.044 to 0.25 uncorrected and back to 0.046 corrected; the
optical one does not depend on the SAR at all (0 % uncorrected). With
the smooth field the corrected SAR's is 50 % off (printed, not asserted):
the exact embedding sees every edge the two interpolations blur.

Run by CTest with Debian's python3 (numpy + GDAL bindings):
    MMCL=build/mmcl python3 tests/cli/test_coreg_science.py -v
"""
import json
import os
import shutil
import sys
import tempfile
import unittest

from osgeo import gdal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmcl_cli import bands, run, specific_figures  # noqa: E402

MODS = ("optical", "sar")
TOLERANCE = 0.10
# The short clip run (6 epochs) moves by a few per cent with the BLAS
# kernel: its corrected SAR loss fraction was 6.2 % (SkylakeX), 7.3 %
# (Haswell) and 10.04 % (Prescott) off the unshifted scene's, against
# 136 % to 139 % uncorrected. Its figures are held to 15 %.
CLIP_TOLERANCE = 0.15
# test_coreg.py's scene (sharp edges between 64 land-cover classes, seen
# by both modalities) on 256 x 256 px with 32 px coreg blocks, as
# test_rgb_coreg.py has it, and specific factors of 0.7 times the shared
# part: the edges then weigh enough in the loss fractions for a shift of
# a pixel or two to show (with the default gain of 2 the specific
# factors dominate them, and the shift moves them by 1 %).
SCENE = ["--size", "256", "--class-blend", "0", "--classes", "64",
         "--specific-gain", "0.7"]
BLOCK = "32"
SHIFTS = {"constant": ["--sar-shift", "1.5,-0.7"],
          "integer": ["--sar-shift", "2,-1"],
          "field": ["--sar-shift-field", "2"]}
OBJECTIVES = {
    "cca": ["--objective", "cca", "--dim", "2", "--patch", "3"],
    "clip": ["--objective", "clip", "--dim", "2", "--patch", "3",
             "--samples", "20000", "--epochs", "6", "--batch", "256",
             "--lr", "0.01"],
}

ROOT = None
FIGURES = {}


def setUpModule():
    global ROOT
    ROOT = tempfile.mkdtemp(prefix="mmcl-coreg-science-")


def tearDownModule():
    shutil.rmtree(ROOT, ignore_errors=True)


def scene(name):
    """The scene @p name ("still" or a key of SHIFTS), made once; with a
    shift, its coreg field. Returns its folder."""
    d = os.path.join(ROOT, name)
    if not os.path.isdir(d):
        run("synth", "-q", *SCENE, *SHIFTS.get(name, []), d)
        if name in SHIFTS:
            run("coreg", "-q", "--block", BLOCK,
                os.path.join(d, "optical.tif"), os.path.join(d, "sar.tif"),
                os.path.join(d, "field.tif"))
    return d


def figures(name, corrected, objective):
    """Train and infoloss on scene @p name, once; the loss fraction and
    the oracle figure of each modality."""
    key = (name, corrected, objective)
    if key in FIGURES:
        return FIGURES[key]
    d = scene(name)
    tag = objective + ("_corrected" if corrected else "_as_is")
    fix = (["--sar-shift-field", os.path.join(d, "field.tif")]
           if corrected else [])
    pair = [os.path.join(d, "optical.tif"), os.path.join(d, "sar.tif")]
    model = os.path.join(d, tag + ".mmcl")
    loss = os.path.join(d, tag + "_loss.tif")
    run("train", "-q", *OBJECTIVES[objective], *fix, *pair, model)
    run("infoloss", "-q", *fix, model, *pair, loss, "--report",
        loss + ".json")
    with open(loss + ".json") as f:
        report = json.load(f)
    maps = bands(loss)
    truth = bands(os.path.join(d, "truth.tif"))
    out = {}
    for mod in MODS:
        out["loss fraction " + mod] = report[mod]["loss_fraction"]
        out["oracle " + mod] = specific_figures(maps, truth, mod)[0]
    FIGURES[key] = out
    return out


def rel(a, ref):
    return abs(a - ref) / abs(ref)


def table(title, rows):
    """The figures side by side, with the relative differences."""
    print("\n%s" % title)
    print("  %-24s %9s %11s %9s %9s %9s" %
          ("figure", "unshifted", "uncorrected", "corrected",
           "d uncorr", "d corr"))
    for k, (ref, off, fix) in rows.items():
        print("  %-24s %9.4f %11.4f %9.4f %8.1f%% %8.1f%%" %
              (k, ref, off, fix, 100 * rel(off, ref), 100 * rel(fix, ref)))


class Science(unittest.TestCase):

    def check(self, shift, loose=(), objective="cca", tolerance=TOLERANCE):
        """Corrected within @p tolerance (10 %) of the unshifted scene for
        every figure (those in @p loose: within twice that, see the
        module's docstring); uncorrected, the loss fractions outside it."""
        ref = figures("still", False, objective)
        off = figures(shift, False, objective)
        fix = figures(shift, True, objective)
        rows = {k: (ref[k], off[k], fix[k]) for k in ref}
        table("%s, SAR misregistered by %s, corrected with its coreg "
              "field" % (objective, " ".join(SHIFTS[shift])), rows)
        for k, (r, o, f) in rows.items():
            self.assertLessEqual(rel(f, r), 2 * tolerance if k in loose
                                 else tolerance,
                                 "%s corrected: %.4f against %.4f" %
                                 (k, f, r))
        for mod in MODS:
            k = "loss fraction " + mod
            r, o, _ = rows[k]
            self.assertGreater(rel(o, r), tolerance,
                               "%s uncorrected: %.4f against %.4f" %
                               (k, o, r))

    def test_smooth_field(self):
        self.check("field")

    def test_integer_shift(self):
        self.check("integer")

    def test_constant_shift(self):
        self.check("constant", loose=("loss fraction optical",))

    def test_clip_integer_shift(self):
        self.check("integer", objective="clip", tolerance=CLIP_TOLERANCE)


class Audit(unittest.TestCase):
    """mmcl audit of the shared factors (an embedding on the optical
    ground, which truth.tif holds): the SAR is corrected, never the
    embedding. With the integer shift, corrected, the cross-validated loss
    fractions are within 10 % of the unshifted scene's, uncorrected not.
    The smooth field's figures are printed, not asserted: see the
    module's docstring (the SAR of a fractional shift is interpolated
    twice, and an exact embedding sees every blurred edge)."""

    def audit(self, name, *fix):
        d = scene(name)
        out = os.path.join(d, "audit%s.tif" % ("_fixed" if fix else ""))
        p = run("audit", "-q", "--json", *fix,
                os.path.join(scene("still"), "truth.tif"),
                os.path.join(d, "optical.tif"), os.path.join(d, "sar.tif"),
                out, "--embedding-bands", "shared_0,shared_1")
        r = json.loads(p.stdout)
        return out, {"CV loss fraction " + m:
                     r[m]["cross_validated"]["loss_fraction"] for m in MODS}

    def test_audit_of_a_corrected_sar(self):
        _, ref = self.audit("still")
        for shift in ("integer", "field"):
            field = os.path.join(scene(shift), "field.tif")
            _, off = self.audit(shift)
            out, fix = self.audit(shift, "--sar-shift-field", field)
            rows = {k: (ref[k], off[k], fix[k]) for k in ref}
            table("audit of the shared factors, SAR misregistered by %s" %
                  " ".join(SHIFTS[shift]), rows)
            self.assertEqual(
                gdal.Open(out).GetMetadataItem("SAR_SHIFT_FIELD", "MMCL"),
                field)
            if shift != "integer":
                continue
            for k, (r, o, f) in rows.items():
                self.assertLessEqual(rel(f, r), TOLERANCE, k)
            self.assertGreater(rel(off["CV loss fraction sar"],
                                   ref["CV loss fraction sar"]), TOLERANCE)


if __name__ == "__main__":
    unittest.main()
