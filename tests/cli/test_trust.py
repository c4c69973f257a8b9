# SPDX-License-Identifier: MIT
"""mmcl never destroys a file: every case of tests/README-trust.md.

Each case runs `mmcl` in a folder of its own holding copies of the same
small files (inputs, a model, earlier outputs of every kind), with TMPDIR
set to an empty private folder, and checks the exit status, the message
naming the problem, that no output and no temporary file is left (in the
folder and in TMPDIR), and that every file that was there before is
byte for byte what it was (a SHA-256 of each, before and after), links
included. The cases in TABLE are one command each; the others need
process control (signals, a file appearing while mmcl runs, planted
links at the temporary names of older versions, a full disk) and are the
test_* methods of Special. README-trust.md lists exactly these cases:
test_readme_lists_every_case checks that.

    MMCL=build/mmcl python3 tests/cli/test_trust.py -v
"""
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import unittest
import zipfile

import numpy as np
from osgeo import gdal

from mmcl_cli import HERE, MMCL, SAMPLE, read_safetensors

gdal.UseExceptions()

TRAIN = ["--objective", "cca", "--dim", "2", "--patch", "3", "--samples",
         "2000"]


class Case:
    """One command and what it must do."""

    def __init__(self, name, args, rc, message=None, setup=None,
                 replaced=(), removed=(), absent=(), check=None,
                 warning=None, env=None):
        self.name = name
        self.args = args
        self.rc = rc
        self.message = message
        # A regex the program's warnings on stderr must match, or False:
        # no warning from mmcl ("Warning: " lines) at all.
        self.warning = warning
        self.setup = setup        # f(folder) before the run
        self.replaced = replaced  # files the command may change (rc 0)
        self.removed = removed    # files the command must remove (rc 0)
        self.absent = absent      # files that must not exist afterwards
        self.check = check        # f(testcase, folder) after the run
        self.env = env or {}      # variables added to the environment


def symlink(target, name):
    return lambda d: os.symlink(target, os.path.join(d, name))


def hardlink(target, name):
    return lambda d: os.link(os.path.join(d, target), os.path.join(d, name))


def write(name, text):
    def f(d):
        with open(os.path.join(d, name), "w") as fp:
            fp.write(text)
    return f


def copy(src, dst):
    return lambda d: shutil.copyfile(os.path.join(d, src),
                                     os.path.join(d, dst))


def shapefile_folder(d):
    """A folder holding a shapefile, as GDAL writes one (four files)."""
    from osgeo import ogr, osr
    folder = os.path.join(d, "shapes")
    os.mkdir(folder)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    ds = ogr.GetDriverByName("ESRI Shapefile").CreateDataSource(folder)
    layer = ds.CreateLayer("parcels", srs, ogr.wkbPoint)
    f = ogr.Feature(layer.GetLayerDefn())
    f.SetGeometry(ogr.CreateGeometryFromWkt("POINT (500000 4800000)"))
    layer.CreateFeature(f)
    ds = None


def foreign_scene(d):
    """A scene folder whose optical.tif is the user's raster, no mmcl
    output (no MMCL metadata)."""
    os.mkdir(os.path.join(d, "scene"))
    ds = gdal.GetDriverByName("GTiff").Create(
        os.path.join(d, "scene", "optical.tif"), 64, 64, 1, gdal.GDT_Byte)
    ds.GetRasterBand(1).Fill(7)
    ds = None


def vrt_of(src, name):
    return lambda d: gdal.Translate(os.path.join(d, name),
                                    os.path.join(d, src), format="VRT")


def make_fifo(name):
    return lambda d: os.mkfifo(os.path.join(d, name))


def still_dangling(t, d):
    t.assertTrue(os.path.islink(os.path.join(d, "dangling.tif")))
    t.assertFalse(os.path.exists(os.path.join(d, "nowhere.tif")))


def dev_null_is_a_device(t, d):
    t.assertTrue(stat.S_ISCHR(os.stat("/dev/null").st_mode))


def gtiff_without_side_file(t, d):
    ds = gdal.Open(os.path.join(d, "cog.tif"))
    t.assertEqual(ds.GetMetadataItem("PRODUCT", "MMCL"), "aligned_sar")
    t.assertIsNone(ds.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE"))


def overviews(name):
    def f(d):
        ds = gdal.Open(os.path.join(d, name))
        ds.BuildOverviews("AVERAGE", [2])  # read-only: name.ovr
        ds = None
        assert os.path.exists(os.path.join(d, name + ".ovr"))
    return f


def is_model(t, d):
    with open(os.path.join(d, "model2.mmcl"), "rb") as f:
        head = f.read(64)
    t.assertIn(b'"__metadata__"', head)



def sar_files(d):
    """sar_vv.tif and sar_vh.tif (bands 1 and 2 of sar.tif, described VV
    and VH), and sar12.tif, the two stacked in one file."""
    sar = gdal.Open(os.path.join(d, "sar.tif"))
    gdal.Translate(os.path.join(d, "sar_vv.tif"), sar, bandList=[1])
    gdal.Translate(os.path.join(d, "sar_vh.tif"), sar, bandList=[2])
    gdal.Translate(os.path.join(d, "sar12.tif"), sar, bandList=[1, 2])


def sar_files_and_model(d):
    """sar_files and m12.mmcl, a model trained on opt.tif and sar12.tif."""
    sar_files(d)
    p = subprocess.run([MMCL, "train", "-q"] + TRAIN +
                       ["opt.tif", "sar12.tif", "m12.mmcl"], cwd=d,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def also(*setups):
    def f(d):
        for s in setups:
            s(d)
    return f


def translated(src, dst, **kw):
    return lambda d: gdal.Translate(os.path.join(d, dst),
                                    os.path.join(d, src), **kw)


def model_sar_is_vv_vh(t, d):
    p = subprocess.run([MMCL, "info", "--json", "m2.mmcl"], cwd=d,
                       capture_output=True, text=True)
    t.assertEqual(p.returncode, 0, p.stderr)
    meta = json.loads(p.stdout)["metadata"]
    t.assertEqual(meta["sar"]["bands"], 2)
    t.assertEqual(meta["sar"]["band_names"], ["VV", "VH"])
    t.assertEqual(meta["optical"]["bands"], 3)


def read_bands(path):
    ds = gdal.Open(path)
    names = [ds.GetRasterBand(k + 1).GetDescription()
             for k in range(ds.RasterCount)]
    return ds.ReadAsArray(), names


def aligned_as_bands_1_2_of_al(t, d):
    got, names = read_bands(os.path.join(d, "al2.tif"))
    want, _ = read_bands(os.path.join(d, "al.tif"))
    t.assertEqual(names, ["VV", "VH"])
    np.testing.assert_array_equal(got, want[:2])


def embed_equals_the_stacked_sar(t, d):
    """The embedding of the two files is byte for byte the one of the
    stacked file."""
    p = subprocess.run([MMCL, "embed", "-q", "m12.mmcl", "opt.tif",
                        "sar12.tif", "e_stacked.tif"], cwd=d,
                       capture_output=True, text=True)
    t.assertEqual(p.returncode, 0, p.stderr)
    with open(os.path.join(d, "e2.tif"), "rb") as a, \
            open(os.path.join(d, "e_stacked.tif"), "rb") as b:
        t.assertEqual(a.read(), b.read())


def descriptor_has_a_sar_array(t, d):
    with open(os.path.join(d, "e2.mmcl.json")) as f:
        j = json.load(f)
    t.assertEqual(j["sar"], ["sar_vv.tif", "sar_vh.tif"])
    t.assertEqual(j["optical"], "opt.tif")


def picture_of_the_sar_array_descriptor(t, d):
    ds = gdal.Open(os.path.join(d, "p2.tif"))
    opt = gdal.Open(os.path.join(d, "opt.tif"))
    t.assertEqual(ds.RasterCount, 4)  # RGBA
    t.assertEqual((ds.RasterXSize, ds.RasterYSize),
                  (opt.RasterXSize, opt.RasterYSize))

def model_with(src, dst, tensor, element, value):
    """A copy of the model @p src whose float32 @p element of @p tensor is
    @p value (NaN, Inf): the bytes edited in place, as a damaged file or a
    diverged training would hold them."""
    def f(d):
        import json
        import struct
        with open(os.path.join(d, src), "rb") as fp:
            raw = bytearray(fp.read())
        (n,) = struct.unpack("<Q", raw[:8])
        begin = json.loads(raw[8:8 + n].decode())[tensor]["data_offsets"][0]
        at = 8 + n + begin + 4 * element
        raw[at:at + 4] = struct.pack("<f", value)
        with open(os.path.join(d, dst), "wb") as fp:
            fp.write(raw)
    return f


def model_std(src, dst, modality, band, value):
    """A copy of the model @p src whose recorded std of @p band (0-based)
    of @p modality is @p value: its header rewritten, the data kept."""
    def f(d):
        import json
        import struct
        with open(os.path.join(d, src), "rb") as fp:
            raw = fp.read()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n].decode())
        meta = json.loads(header["__metadata__"]["mmcl"])
        meta[modality]["std"][band] = value
        header["__metadata__"]["mmcl"] = json.dumps(meta)
        text = json.dumps(header).encode()
        text += b" " * (-(8 + len(text)) % 8)
        with open(os.path.join(d, dst), "wb") as fp:
            fp.write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
    return f


def window(src, dst, xoff, yoff, w, h):
    """@p dst: the @p w x @p h window of @p src at (xoff, yoff)."""
    return lambda d: gdal.Translate(os.path.join(d, dst),
                                    os.path.join(d, src),
                                    srcWin=[xoff, yoff, w, h])


def constant(src, dst, value):
    """@p dst: @p src with every band filled with @p value."""
    def f(d):
        ds = gdal.GetDriverByName("GTiff").CreateCopy(
            os.path.join(d, dst), gdal.Open(os.path.join(d, src)))
        for b in range(1, ds.RasterCount + 1):
            ds.GetRasterBand(b).Fill(value)
        ds = None
    return f


def placed(src, dst, srs, ullr):
    """@p dst: @p src said to be in @p srs at the corners @p ullr."""
    return lambda d: gdal.Translate(os.path.join(d, dst),
                                    os.path.join(d, src), outputSRS=srs,
                                    outputBounds=ullr)


def starts_with(name, magic):
    def f(t, d):
        with open(os.path.join(d, name), "rb") as fp:
            t.assertEqual(fp.read(len(magic)), magic)
    return f


ALIGN = ["align", "-q"]
INFOLOSS = ["infoloss", "-q", "--overwrite", "model.mmcl", "opt.tif",
            "sar.tif"]

# Outputs: what a command may write, replace or remove.
OUTPUTS = [
    # The trust issue's reproduced cases.
    Case("train_model_name_forgotten",
         ["train", "-q", "--overwrite"] + TRAIN +
         ["B01.tif", "B02.tif", "B03.tif", "sar.tif"], 1,
         r"output 'sar\.tif' is a synthetic SAR raster of mmcl synth; "
         r"--overwrite replaces only an mmcl model file"),
    Case("align_out_forgotten",
         ALIGN + ["--overwrite", "B01.tif", "B02.tif", "B03.tif", "sar.tif"],
         1, r"output 'sar\.tif' is .*--overwrite replaces only an aligned "
         r"SAR"),
    Case("align_out_is_the_optical",
         ALIGN + ["--overwrite", "opt.tif", "sar.tif", "opt.tif"], 1,
         r"output 'opt\.tif' is also an input of this command .*never "
         r"writes over its inputs"),
    Case("align_out_is_the_sar_as_dot_slash",
         ALIGN + ["--overwrite", "opt.tif", "sar.tif", "./sar.tif"], 1,
         r"output '\./sar\.tif' is also an input of this command \(the same "
         r"file as 'sar\.tif'\)"),
    Case("align_out_is_a_symlink_to_an_input",
         ALIGN + ["--overwrite", "opt.tif", "sar.tif", "link.tif"], 1,
         r"'link\.tif' is also an input .*'opt\.tif'",
         setup=symlink("opt.tif", "link.tif")),
    Case("align_out_is_a_hard_link_to_an_input",
         ALIGN + ["--overwrite", "opt.tif", "sar.tif", "hard.tif"], 1,
         r"'hard\.tif' is also an input .*'sar\.tif'",
         setup=hardlink("sar.tif", "hard.tif")),
    Case("rgb_in_is_out",
         ["rgb", "-q", "--overwrite", "pic.tif", "pic.tif"], 1,
         r"'pic\.tif' is also an input"),
    Case("rgb_out_is_the_source_of_a_vrt_input",
         ["rgb", "-q", "--overwrite", "picv.vrt", "pic.tif"], 1,
         r"output 'pic\.tif' is also an input of this command",
         setup=vrt_of("pic.tif", "picv.vrt")),
    Case("rgb_lazy_over_the_descriptors_model",
         ["rgb", "-q", "--lazy", "--overwrite", "emb.mmcl.json",
          "model.mmcl"], 1, r"'model\.mmcl' is also an input"),
    Case("rgb_lazy_over_the_descriptors_optical",
         ["rgb", "-q", "--lazy", "--overwrite", "emb.mmcl.json", "opt.tif"],
         1, r"'opt\.tif' is also an input"),
    Case("rgb_lazy_over_its_input",
         ["rgb", "-q", "--lazy", "--overwrite", "emb.mmcl.json",
          "emb.mmcl.json"], 1, r"'emb\.mmcl\.json' is also an input"),
    Case("infoloss_report_is_the_model",
         INFOLOSS + ["l.tif", "--report", "model.mmcl"], 1,
         r"report 'model\.mmcl' is also an input", absent=["l.tif"]),
    Case("infoloss_report_is_an_input",
         INFOLOSS + ["l.tif", "--report", "sar.tif"], 1,
         r"report 'sar\.tif' is also an input", absent=["l.tif"]),
    Case("infoloss_report_is_out",
         ["infoloss", "-q", "model.mmcl", "opt.tif", "sar.tif", "l.tif",
          "--report", "l.tif"], 1,
         r"report 'l\.tif' and output 'l\.tif' are the same file",
         absent=["l.tif"]),
    Case("infoloss_report_is_out_with_overwrite",
         INFOLOSS + ["loss.tif", "--report", "loss.tif"], 1,
         r"report 'loss\.tif' and output 'loss\.tif' are the same file"),
    Case("embed_out_is_the_model",
         ["embed", "-q", "--overwrite", "model.mmcl", "opt.tif", "sar.tif",
          "model.mmcl"], 1, r"output 'model\.mmcl' is also an input"),
    Case("align_out_is_a_folder_with_a_shapefile",
         ALIGN + ["--overwrite", "opt.tif", "sar.tif", "shapes/"], 1,
         r"output 'shapes/' names a folder", setup=shapefile_folder),
    Case("align_out_is_a_folder",
         ALIGN + ["--overwrite", "opt.tif", "sar.tif", "shapes"], 1,
         r"output 'shapes' is a folder, not a file", setup=shapefile_folder),
    # More cases around outputs.
    Case("out_is_a_dangling_symlink",
         ALIGN + ["opt.tif", "sar.tif", "dangling.tif"], 1,
         r"'dangling\.tif' is a symbolic link to a missing file",
         setup=symlink("nowhere.tif", "dangling.tif"), check=still_dangling),
    Case("out_is_a_dangling_symlink_with_overwrite",
         ALIGN + ["--overwrite", "opt.tif", "sar.tif", "dangling.tif"], 1,
         r"'dangling\.tif' is a symbolic link to a missing file",
         setup=symlink("nowhere.tif", "dangling.tif"), check=still_dangling),
    Case("out_is_a_symlink_to_an_own_output",
         ALIGN + ["--overwrite", "opt.tif", "sar.tif", "alias.tif"], 1,
         r"'alias\.tif' is a symbolic link; mmcl replaces only a regular "
         r"file", setup=symlink("al.tif", "alias.tif")),
    Case("out_is_a_fifo",
         ALIGN + ["--overwrite", "opt.tif", "sar.tif", "pipe.tif"], 1,
         r"'pipe\.tif' is a FIFO \(named pipe\), not a file",
         setup=make_fifo("pipe.tif")),
    Case("out_is_dev_null",
         ALIGN + ["opt.tif", "sar.tif", "/dev/null"], 1,
         r"'/dev/null' is a character device, not a file",
         check=dev_null_is_a_device),
    Case("out_is_dev_null_with_overwrite",
         ALIGN + ["--overwrite", "opt.tif", "sar.tif", "/dev/null"], 1,
         r"'/dev/null' is a character device, not a file",
         check=dev_null_is_a_device),
    Case("out_in_a_missing_folder",
         ALIGN + ["opt.tif", "sar.tif", "nofolder/al.tif"], 1,
         r"output folder 'nofolder' of output 'nofolder/al\.tif' does not "
         r"exist"),
    Case("out_is_gdals_side_file_of_an_input",
         ALIGN + ["opt.tif", "sar.tif", "opt.tif.aux.xml"], 1,
         r"'opt\.tif\.aux\.xml' is GDAL's side file of the input "
         r"'opt\.tif'", absent=["opt.tif.aux.xml"]),
    Case("stale_side_file_without_overwrite",
         ALIGN + ["opt.tif", "sar.tif", "new.tif"], 1,
         r"'new\.tif\.aux\.xml' exists: GDAL's side file, which would "
         r"describe the new output 'new\.tif'",
         setup=write("new.tif.aux.xml", "<PAMDataset></PAMDataset>\n"),
         absent=["new.tif"]),
    Case("stale_overviews_without_overwrite",
         ALIGN + ["opt.tif", "sar.tif", "new.tif"], 1,
         r"'new\.tif\.ovr' exists: GDAL's side file, which would describe "
         r"the new output 'new\.tif'",
         setup=write("new.tif.ovr", "overviews of a file long gone\n"),
         absent=["new.tif"]),
    Case("overwrite_with_a_foreign_file_at_a_side_name",
         ALIGN + ["--overwrite", "opt.tif", "sar.tif", "al.tif"], 1,
         r"side file 'al\.tif\.msk' is a file of another kind; --overwrite "
         r"replaces only GDAL's side file of an mmcl output",
         setup=write("al.tif.msk", "my notes\n")),
    Case("overwrite_a_model_with_a_raster",
         ["embed", "-q", "--overwrite", "model.mmcl", "opt.tif", "sar.tif",
          "model2.mmcl"], 1,
         r"output 'model2\.mmcl' is an mmcl model file; --overwrite replaces "
         r"only an embedding map", setup=copy("model.mmcl", "model2.mmcl")),
    Case("overwrite_a_report_with_a_model",
         ["train", "-q", "--overwrite"] + TRAIN +
         ["opt.tif", "sar.tif", "report.json"], 1,
         r"output 'report\.json' is an information-loss report; "
         r"--overwrite replaces only an mmcl model file"),
    Case("overwrite_a_descriptor_with_a_report",
         INFOLOSS + ["l.tif", "--report", "emb.mmcl.json"], 1,
         r"'emb\.mmcl\.json' is a lazy embedding descriptor; --overwrite "
         r"replaces only an information-loss report", absent=["l.tif"]),
    Case("overwrite_an_infoloss_map_with_an_embedding",
         ["embed", "-q", "--overwrite", "model.mmcl", "opt.tif", "sar.tif",
          "loss.tif"], 1,
         r"'loss\.tif' is an information-loss map written by mmcl infoloss; "
         r"--overwrite replaces only an embedding map"),
    Case("overwrite_a_raster_with_a_descriptor",
         ["embed", "-q", "--lazy", "--overwrite", "model.mmcl", "opt.tif",
          "sar.tif", "emb.tif"], 1,
         r"'emb\.tif' is an embedding map .*--overwrite replaces only a lazy "
         r"embedding descriptor"),
    Case("overwrite_a_foreign_legend_description",
         ["rgb", "-q", "--overwrite", "loss.tif", "pic2.tif"], 1,
         r"legend description 'pic2\.legend\.json' is a JSON file; "
         r"--overwrite replaces only a legend description",
         setup=write("pic2.legend.json", '{"mine": 1}\n'),
         absent=["pic2.tif", "pic2.legend.png"]),
    Case("synth_overwrite_over_a_foreign_raster",
         ["synth", "-q", "--overwrite", "--size", "64", "scene"], 1,
         r"output 'scene/optical\.tif' is a GTiff file that mmcl did not "
         r"write; --overwrite replaces only a synthetic optical raster",
         setup=foreign_scene,
         absent=["scene/sar.tif", "scene/synth.json"]),
    # What --overwrite is for keeps working.
    Case("overwrite_an_own_output",
         ALIGN + ["--overwrite", "--sar-db", "opt.tif", "sar.tif", "al.tif"],
         0, replaced=["al.tif", "al.qml"]),
    Case("overwrite_a_cog_drops_its_side_file",
         ALIGN + ["--overwrite", "opt.tif", "sar.tif", "cog.tif"], 0,
         replaced=["cog.tif"], removed=["cog.tif.aux.xml"],
         check=gtiff_without_side_file),
    Case("overwrite_drops_the_replaced_outputs_overviews",
         ALIGN + ["--overwrite", "--sar-db", "opt.tif", "sar.tif", "al.tif"],
         0, setup=overviews("al.tif"), replaced=["al.tif", "al.qml"],
         removed=["al.tif.ovr"]),
    Case("overwrite_an_own_model",
         ["train", "-q", "--overwrite", "--dim", "3", "--patch", "3",
          "--samples", "2000", "opt.tif", "sar.tif", "model2.mmcl"], 0,
         setup=copy("model.mmcl", "model2.mmcl"), replaced=["model2.mmcl"],
         check=is_model),
]

def descriptor(name, **keys):
    """A descriptor file holding @p keys."""
    return write(name, json.dumps(keys))


def embedding(name, **keys):
    """A map descriptor of the folder's files, with @p keys replaced."""
    d = {"product": "embedding", "model": "model.mmcl",
         "optical": "opt.tif", "sar": "sar.tif"}
    d.update(keys)
    return descriptor(name, **d)


def picture_chain(n):
    """p1.mmcl.json, a picture of p2.mmcl.json, ..., pn of emb.mmcl.json."""
    def f(d):
        for k in range(1, n + 1):
            src = "p%d.mmcl.json" % (k + 1) if k < n else "emb.mmcl.json"
            descriptor("p%d.mmcl.json" % k, product="rgb", source=src)(d)
    return f


def both(*setups):
    def f(d):
        for s in setups:
            s(d)
    return f


def local_zip(d):
    """in.zip holding copies of opt.tif and sar.tif."""
    with zipfile.ZipFile(os.path.join(d, "in.zip"), "w") as z:
        z.write(os.path.join(d, "opt.tif"), "opt.tif")
        z.write(os.path.join(d, "sar.tif"), "sar.tif")


def has(name):
    return lambda t, d: t.assertTrue(os.path.exists(os.path.join(d, name)))


CURL = "/vsicurl/http://127.0.0.1:9/x.tif"  # port 9: nothing listens
ALLOW = ["--config", "MMCL_DESCRIPTOR_ALLOW_REMOTE", "YES"]
# The refusal's words, absent when the path is allowed.
REFUSED = "a descriptor names local files"

# Lazy descriptors: cycles, nesting, paths that reach out, duplicate keys.
DESCRIPTORS = [
    Case("descriptor_source_is_itself",
         ["rgb", "-q", "self.mmcl.json", "out.tif"], 1,
         r"descriptor 'self\.mmcl\.json' refers to itself \(a cycle\)",
         setup=descriptor("self.mmcl.json", product="rgb",
                          source="self.mmcl.json"), absent=["out.tif"]),
    Case("descriptor_cycle_of_two",
         ["rgb", "-q", "a.mmcl.json", "out.tif"], 1,
         r"descriptor 'a\.mmcl\.json' refers to itself through "
         r"'b\.mmcl\.json' \(a cycle\)",
         setup=both(descriptor("a.mmcl.json", product="rgb",
                               source="b.mmcl.json"),
                    descriptor("b.mmcl.json", product="rgb",
                               source="a.mmcl.json")), absent=["out.tif"]),
    Case("descriptor_cycle_through_a_subfolder",
         ["rgb", "-q", "a.mmcl.json", "out.tif"], 1,
         r"descriptor 'a\.mmcl\.json' refers to itself through "
         r"'sub/b\.mmcl\.json' \(a cycle\)",
         setup=both(lambda d: os.mkdir(os.path.join(d, "sub")),
                    descriptor("a.mmcl.json", product="rgb",
                               source="sub/b.mmcl.json"),
                    descriptor("sub/b.mmcl.json", product="rgb",
                               source="../a.mmcl.json")),
         absent=["out.tif"]),
    Case("map_descriptor_optical_is_a_descriptor",
         ["rgb", "-q", "m.mmcl.json", "out.tif"], 1,
         r"descriptor 'm\.mmcl\.json': \"optical\" 'emb\.mmcl\.json' is "
         r"an mmcl descriptor, not a raster",
         setup=embedding("m.mmcl.json", optical="emb.mmcl.json"),
         absent=["out.tif"]),
    Case("map_descriptor_model_is_itself",
         ["rgb", "-q", "m.mmcl.json", "out.tif"], 1,
         r"\"model\" 'm\.mmcl\.json' is an mmcl descriptor, not a model "
         r"file", setup=embedding("m.mmcl.json", model="m.mmcl.json"),
         absent=["out.tif"]),
    Case("descriptors_nested_too_deep",
         ["rgb", "-q", "p1.mmcl.json", "out.tif"], 1,
         r"descriptors nested deeper than 4: 'p1\.mmcl\.json' > "
         r"'p2\.mmcl\.json' > 'p3\.mmcl\.json' > 'p4\.mmcl\.json' > "
         r"'p5\.mmcl\.json'",
         setup=picture_chain(6), absent=["out.tif"]),
    Case("descriptor_vsicurl_refused",
         ["rgb", "-q", "net.mmcl.json", "out.tif"], 1,
         r"descriptor 'net\.mmcl\.json': \"optical\" "
         r"'/vsicurl/http://127\.0\.0\.1:9/x\.tif' is a network path; "
         r"a descriptor names local files unless .*"
         r"MMCL_DESCRIPTOR_ALLOW_REMOTE=YES",
         setup=embedding("net.mmcl.json", optical=CURL),
         absent=["out.tif"]),
    Case("descriptor_vsicurl_allowed_fails_in_gdal",
         ["rgb", "-q"] + ALLOW + ["net.mmcl.json", "out.tif"], 1,
         r"^(?![\s\S]*%s)[\s\S]*cannot open optical raster "
         r"'/vsicurl/http://127\.0\.0\.1:9/x\.tif': .*does not exist in "
         r"the file system" % REFUSED,
         setup=embedding("net.mmcl.json", optical=CURL),
         absent=["out.tif"]),
    Case("descriptor_vsicurl_inside_vsizip_refused",
         ["rgb", "-q", "net.mmcl.json", "out.tif"], 1,
         r"\"sar\" '/vsizip//vsicurl/http://127\.0\.0\.1:9/a\.zip/s\.tif' "
         r"is a network path",
         setup=embedding("net.mmcl.json",
                         sar="/vsizip//vsicurl/http://127.0.0.1:9/a.zip/"
                             "s.tif"), absent=["out.tif"]),
    Case("descriptor_path_of_many_archive_prefixes",
         ["rgb", "-q", "net.mmcl.json", "out.tif"], 1,
         r"\"sar\" '(/vsizip/){25}\.\.\.' is a network path",
         setup=embedding("net.mmcl.json",
                         sar="/vsizip/" * 100000 +
                             "/vsicurl/http://127.0.0.1:9/a.zip/s.tif"),
         absent=["out.tif"]),
    Case("descriptor_inline_xml_refused",
         ["rgb", "-q", "x.mmcl.json", "out.tif"], 1,
         r"\"sar\" '<VRTDataset rasterXSize=\"1\" .*' is inline XML",
         setup=embedding("x.mmcl.json",
                         sar='<VRTDataset rasterXSize="1" rasterYSize="1">'
                             '<VRTRasterBand dataType="Byte" band="1"/>'
                             '</VRTDataset>'), absent=["out.tif"]),
    Case("descriptor_connection_string_refused",
         ["rgb", "-q", "w.mmcl.json", "out.tif"], 1,
         r"\"source\" 'WMS:http://127\.0\.0\.1:9/wms' is a GDAL "
         r"connection string",
         setup=descriptor("w.mmcl.json", product="rgb",
                          source="WMS:http://127.0.0.1:9/wms"),
         absent=["out.tif"]),
    Case("descriptor_vsimem_refused",
         ["rgb", "-q", "v.mmcl.json", "out.tif"], 1,
         r"\"source\" '/vsimem/x\.tif' is a GDAL virtual file path other "
         r"than a local archive",
         setup=descriptor("v.mmcl.json", product="rgb",
                          source="/vsimem/x.tif"), absent=["out.tif"]),
    Case("descriptor_duplicate_key_refused",
         ["rgb", "-q", "dup.mmcl.json", "out.tif"], 1,
         r"descriptor 'dup\.mmcl\.json': key \"sar\" appears twice",
         setup=write("dup.mmcl.json",
                     '{"product": "embedding", "model": "model.mmcl", '
                     '"optical": "opt.tif", "sar": "sar.tif", '
                     '"sar": "B01.tif"}'), absent=["out.tif"]),
    Case("descriptor_duplicate_key_in_a_nested_object",
         ["rgb", "-q", "pd.mmcl.json", "out.tif"], 1,
         r"descriptor 'pd\.mmcl\.json': key \"mean\" appears twice",
         setup=write("pd.mmcl.json",
                     '{"product": "rgb", "source": "emb.mmcl.json", '
                     '"pca": {"mean": [0, 0], "mean": [1, 1]}}'),
         absent=["out.tif"]),
    # What descriptors are for keeps working.
    Case("picture_of_an_embedding_descriptor",
         ["rgb", "-q", "emb.mmcl.json", "out.tif"], 0, check=has("out.tif")),
    Case("lazy_picture_of_an_embedding_descriptor",
         ["rgb", "-q", "--lazy", "emb.mmcl.json", "out.mmcl.json"], 0,
         check=has("out.mmcl.json")),
    Case("map_descriptor_reads_a_local_zip",
         ["rgb", "-q", "z.mmcl.json", "out.tif"], 0,
         setup=both(local_zip,
                    embedding("z.mmcl.json", optical="/vsizip/in.zip/opt.tif",
                              sar="/vsizip/in.zip/sar.tif")),
         check=has("out.tif")),
]

# Inputs an analyst mixes up, and inputs that make no sense.
INPUTS = [
    # Messages and degenerate inputs.
    Case("info_on_a_raster", ["info", "opt.tif"], 1,
         r"'opt\.tif' is a raster \(GTiff\), not an mmcl model"),
    Case("info_on_a_png_picture", ["info", "pic.png"], 1,
         r"'pic\.png' is a raster \(PNG\), not an mmcl model",
         setup=lambda d: gdal.Translate(os.path.join(d, "pic.png"),
                                        os.path.join(d, "pic.tif"),
                                        format="PNG")),
    Case("info_on_a_descriptor", ["info", "emb.mmcl.json"], 1,
         r"'emb\.mmcl\.json' is an mmcl lazy descriptor \(an embedding "
         r"computed when read, with the model 'model\.mmcl'\), not an mmcl "
         r"model"),
    Case("info_on_a_text_file", ["info", "notes.txt"], 1,
         r"'notes\.txt' is not an mmcl model \(it starts with text, "
         r"\"Scene of 2024-05-01, tile 31TCJ\"\)",
         setup=write("notes.txt", "Scene of 2024-05-01, tile 31TCJ\n"
                                  "cloud cover 3 %\n")),
    Case("info_on_etc_passwd_like_text", ["info", "passwd"], 1,
         r"(?s)\A(?!.*header length).*'passwd' is not an mmcl model \(it "
         r"starts with text, \"root:x:0:0:root:/root:/bin/bash\"\)",
         setup=write("passwd", "root:x:0:0:root:/root:/bin/bash\n"
                               "daemon:x:1:1:daemon:/usr/sbin\n")),
    Case("embed_model_forgotten",
         ["embed", "-q", "B01.tif", "B02.tif", "B03.tif", "sar.tif",
          "e.tif"], 1,
         r"'B01\.tif' is a raster \(GTiff\), not an mmcl model"),
    Case("infoloss_model_forgotten",
         ["infoloss", "-q", "opt.tif", "opt.tif", "sar.tif", "l.tif"], 1,
         r"'opt\.tif' is a raster \(GTiff\), not an mmcl model"),
    Case("model_with_nan_weights",
         ["embed", "-q", "nan.mmcl", "opt.tif", "sar.tif", "e.tif"], 1,
         r"model file 'nan\.mmcl': tensor 'encoder\.optical\.0\.weight' "
         r"holds NaN at element 17",
         setup=model_with("model.mmcl", "nan.mmcl",
                          "encoder.optical.0.weight", 17, float("nan"))),
    Case("model_with_inf_weights", ["info", "inf.mmcl"], 1,
         r"model file 'inf\.mmcl': tensor 'decoder\.sar\.unimodal\.bias' "
         r"holds \+Inf at element 3",
         setup=model_with("model.mmcl", "inf.mmcl",
                          "decoder.sar.unimodal.bias", 3, float("inf"))),
    Case("model_with_a_zero_std",
         ["embed", "-q", "std0.mmcl", "opt.tif", "sar.tif", "e.tif"], 1,
         r"model '[^']*std0\.mmcl': the sar std of band 2 is 0; the "
         r"standardization divides by it, so it must be positive",
         setup=model_std("model.mmcl", "std0.mmcl", "sar", 1, 0.0)),
    Case("sar_in_another_utm_zone",
         ALIGN + ["opt.tif", "sar32.tif", "a.tif"], 1,
         r"the SAR footprint does not overlap the optical raster: no pixel "
         r"in common\.\n  optical 'opt\.tif' \(EPSG:32631, WGS 84 / UTM zone "
         r"31N\): x 500000 \.\. 501920, y 4798080 \.\. 4800000; lon 3\.00000 "
         r"\.\. 3\.02369, lat 43\.33556 \.\. 43\.35286\n  SAR 'sar32\.tif' "
         r"\(EPSG:32632, WGS 84 / UTM zone 32N\): x 500000 \.\. 501200, y "
         r"4799120 \.\. 4800000; in the optical CRS: x 986294 \.\. 987558, "
         r"y 4816632 \.\. 4817599; lon 9\.00000 \.\. 9\.01481",
         setup=placed("sar.tif", "sar32.tif", "EPSG:32632",
                      [500000, 4800000, 501200, 4799120])),
    Case("sar_with_latitude_and_longitude_swapped",
         ALIGN + ["opt.tif", "sarxy.tif", "a.tif"], 1,
         r"SAR 'sarxy\.tif' \(EPSG:4326, WGS 84\): lon 43\.35300 \.\. "
         r"43\.37060, lat 2\.99980 \.\. 3\.02380; in the optical CRS",
         setup=placed("sar.tif", "sarxy.tif", "EPSG:4326",
                      [43.353, 2.9998, 43.3706, 3.0238])),
    Case("train_on_1x1",
         ["train", "-q", "--patch", "1", "--dim", "2", "one.tif", "sar.tif",
          "m.mmcl"], 1,
         r"optical 'one\.tif' and SAR 'sar\.tif': only 1 valid 1x1 patch "
         r"\(1 valid pixel\); training needs at least 32",
         setup=window("opt.tif", "one.tif", 96, 96, 1, 1)),
    Case("train_patch_larger_than_the_raster",
         ["train", "-q"] + TRAIN + ["two.tif", "sar.tif", "m.mmcl"], 1,
         r"patch size 3 is larger than the 2 x 2 raster of optical "
         r"'two\.tif'",
         setup=window("opt.tif", "two.tif", 96, 96, 2, 2)),
    Case("train_on_too_few_valid_pixels",
         ["train", "-q", "--dim", "2", "--patch", "3", "five.tif",
          "sar.tif", "m.mmcl"], 1,
         r"optical 'five\.tif' and SAR 'sar\.tif': only 25 valid 3x3 "
         r"patches \(25 valid pixels\); training needs at least 32",
         setup=window("opt.tif", "five.tif", 96, 96, 5, 5)),
    Case("train_on_constant_optical",
         ["train", "-q"] + TRAIN + ["c.tif", "sar.tif", "m.mmcl"], 1,
         r"optical 'c\.tif': every band is constant over the \d+ valid "
         r"pixels; nothing to learn",
         setup=constant("opt.tif", "c.tif", 1234)),
    Case("train_on_constant_sar",
         ["train", "-q"] + TRAIN + ["opt.tif", "c.tif", "m.mmcl"], 1,
         r"SAR 'c\.tif': every band is constant over the \d+ valid pixels; "
         r"nothing to learn",
         setup=constant("sar.tif", "c.tif", -12.5)),
    Case("rgb_png_from_extension", ["rgb", "-q", "emb.tif", "out.png"], 0,
         check=starts_with("out.png", b"\x89PNG\r\n\x1a\n")),
    Case("rgb_of_gtiff_named_png", ["rgb", "-q", "-of", "GTiff", "emb.tif",
                                    "out.png"], 0,
         check=starts_with("out.png", b"II*\x00")),
    Case("embed_to_png_refused",
         ["embed", "-q", "model.mmcl", "opt.tif", "sar.tif", "e.png"], 1,
         r"output 'e\.png': format PNG cannot hold Float32 values, which "
         r"this product has \(PNG writes Byte, UInt16 only\); name the "
         r"output \.tif"),
    Case("infoloss_to_jpg_refused", INFOLOSS + ["l.jpg"], 1,
         r"output 'l\.jpg': format JPEG cannot hold Float32 values"),
    Case("rgb_to_jpg_refused", ["rgb", "-q", "emb.tif", "out.jpg"], 1,
         r"output 'out\.jpg': JPEG cannot hold the alpha band of the "
         r"picture"),
    Case("unknown_extension_refused",
         ALIGN + ["opt.tif", "sar.tif", "other.foo"], 1,
         r"output 'other\.foo': no GDAL raster format that can write takes "
         r"the extension '\.foo'; give the format with -of"),
    Case("raster_named_like_a_descriptor_refused",
         ["embed", "-q", "model.mmcl", "opt.tif", "sar.tif",
          "e.mmcl.json"], 1,
         r"output 'e\.mmcl\.json' has the name of a lazy descriptor: give "
         r"--lazy to write one"),
    # The pair: SAR files, complex SAR, one file as both.
    Case("train_vv_vh_as_two_sar_files",
         ["train", "-q"] + TRAIN + ["B01.tif", "B02.tif", "B03.tif",
                                    "--sar", "sar_vv.tif", "--sar",
                                    "sar_vh.tif", "m2.mmcl"], 0,
         setup=sar_files, check=model_sar_is_vv_vh),
    Case("align_vv_vh_as_two_sar_files",
         ALIGN + ["opt.tif", "--sar", "sar_vv.tif", "--sar", "sar_vh.tif",
                  "al2.tif"], 0,
         setup=sar_files, check=aligned_as_bands_1_2_of_al),
    Case("embed_two_sar_files_equals_the_stacked_sar",
         ["embed", "-q", "m12.mmcl", "opt.tif", "--sar", "sar_vv.tif",
          "--sar", "sar_vh.tif", "e2.tif"], 0,
         setup=sar_files_and_model, check=embed_equals_the_stacked_sar),
    Case("lazy_descriptor_written_with_a_sar_array",
         ["embed", "-q", "--lazy", "m12.mmcl", "opt.tif", "--sar",
          "sar_vv.tif", "--sar", "sar_vh.tif", "e2.mmcl.json"], 0,
         setup=sar_files_and_model, check=descriptor_has_a_sar_array),
    Case("lazy_descriptor_with_a_sar_array_is_read",
         ["rgb", "-q", "e2.mmcl.json", "p2.tif"], 0,
         setup=also(sar_files_and_model, write(
             "e2.mmcl.json",
             '{"product": "embedding", "model": "m12.mmcl", "optical": '
             '"opt.tif", "sar": ["sar_vv.tif", "sar_vh.tif"]}\n')),
         check=picture_of_the_sar_array_descriptor),
    Case("lazy_out_is_one_of_the_sar_files",
         ["embed", "-q", "--lazy", "--overwrite", "m12.mmcl", "opt.tif",
          "--sar", "sar_vv.tif", "--sar", "sar_vh.tif", "sar_vh.tif"], 1,
         r"output 'sar_vh\.tif' is also an input of this command",
         setup=sar_files_and_model),
    Case("rgb_lazy_over_a_sar_file_of_its_descriptor",
         ["rgb", "-q", "--lazy", "--overwrite", "e2.mmcl.json",
          "sar_vh.tif"], 1,
         r"output 'sar_vh\.tif' is also an input of this command",
         setup=also(sar_files_and_model, write(
             "e2.mmcl.json",
             '{"product": "embedding", "model": "m12.mmcl", "optical": '
             '"opt.tif", "sar": ["sar_vv.tif", "sar_vh.tif"]}\n'))),
    Case("align_out_is_the_second_sar_file",
         ALIGN + ["--overwrite", "opt.tif", "--sar", "sar_vv.tif", "--sar",
                  "sar_vh.tif", "sar_vh.tif"], 1,
         r"output 'sar_vh\.tif' is also an input of this command",
         setup=sar_files),
    Case("embed_sar_files_in_another_order",
         ["embed", "-q", "m12.mmcl", "opt.tif", "--sar", "sar_vh.tif",
          "--sar", "sar_vv.tif", "e.tif"], 1,
         r"the SAR bands of 'sar_vh\.tif' \.\. 'sar_vv\.tif' \(2 files\) are "
         r"in another order than the model's: the input has VH, VV, the "
         r"model was trained with VV, VH; give the files in the model's "
         r"order", setup=sar_files_and_model, absent=["e.tif"]),
    Case("sar_files_on_different_grids",
         ALIGN + ["opt.tif", "--sar", "sar_vv.tif", "--sar", "vh_crop.tif",
                  "x.tif"], 1,
         r"SAR files 'sar_vv\.tif' and 'vh_crop\.tif' are on different "
         r"grids \(120 x 88 pixels .* and 100 x 80 pixels .*\); stacking SAR "
         r"files needs one grid",
         setup=also(sar_files, translated("sar_vh.tif", "vh_crop.tif",
                                          srcWin=[0, 0, 100, 80]))),
    Case("sar_files_with_different_nodata",
         ALIGN + ["opt.tif", "--sar", "sar_vv.tif", "--sar", "vh_nd.tif",
                  "x.tif"], 1,
         r"SAR files 'sar_vv\.tif' and 'vh_nd\.tif' have different nodata "
         r"values \(nan and -9999\)",
         setup=also(sar_files, translated("sar_vh.tif", "vh_nd.tif",
                                          noData=-9999))),
    Case("multi_band_file_among_sar_files",
         ALIGN + ["opt.tif", "--sar", "sar_vv.tif", "--sar", "sar.tif",
                  "x.tif"], 1,
         r"SAR file 'sar\.tif' has 4 bands: several SAR files are stacked "
         r"one band each", setup=sar_files),
    Case("multi_band_file_among_optical_files",
         ALIGN + ["B01.tif", "opt.tif", "sar.tif", "x.tif"], 1,
         r"optical file 'opt\.tif' has 8 bands: several optical files are "
         r"stacked one band each"),
    Case("complex_sar_refused",
         ["train", "-q"] + TRAIN + ["opt.tif", "sar_c.tif", "m.mmcl"], 1,
         r"SAR 'sar_c\.tif' band 1 is complex \(CFloat32\): mmcl needs "
         r"intensity or amplitude in dB or linear power; convert it first "
         r"\(e\.g\. gdal_translate -ot Float32 "
         r"DERIVED_SUBDATASET:INTENSITY:sar_c\.tif intensity\.tif",
         setup=translated("sar.tif", "sar_c.tif",
                          outputType=gdal.GDT_CFloat32)),
    Case("complex_sar_file_among_sar_files",
         ["embed", "-q", "m12.mmcl", "opt.tif", "--sar", "sar_vv.tif",
          "--sar", "vh_c.tif", "e.tif"], 1,
         r"SAR 'vh_c\.tif' band 1 is complex \(CInt16\)",
         setup=also(sar_files_and_model,
                    translated("sar_vh.tif", "vh_c.tif",
                               outputType=gdal.GDT_CInt16))),
    Case("complex_optical_refused",
         ["embed", "-q", "model.mmcl", "opt_c.tif", "sar.tif", "e.tif"], 1,
         r"optical 'opt_c\.tif' band 1 is complex \(CInt16\): mmcl needs "
         r"real-valued bands",
         setup=translated("opt.tif", "opt_c.tif",
                          outputType=gdal.GDT_CInt16)),
    Case("same_file_as_optical_and_sar",
         ["embed", "-q", "model.mmcl", "opt.tif", "opt.tif", "e.tif"], 1,
         r"'opt\.tif' is given as both optical and SAR: the two modalities "
         r"must be different rasters"),
    Case("same_file_via_symlink",
         ["train", "-q"] + TRAIN + ["opt.tif", "link.tif", "m.mmcl"], 1,
         r"optical 'opt\.tif' and SAR 'link\.tif' are the same file \(a "
         r"link or another name of it\)",
         setup=symlink("opt.tif", "link.tif")),
    Case("same_file_via_hard_link_among_sar_files",
         ALIGN + ["B01.tif", "B02.tif", "--sar", "sar_vv.tif", "--sar",
                  "b2.tif", "x.tif"], 1,
         r"optical 'B02\.tif' and SAR 'b2\.tif' are the same file",
         setup=also(sar_files, hardlink("B02.tif", "b2.tif"))),
    Case("optical_file_given_twice",
         ["train", "-q"] + TRAIN + ["B01.tif", "B02.tif", "B01.tif",
                                    "sar.tif", "m.mmcl"], 1,
         r"optical file 'B01\.tif' is given twice; give each file once"),
    Case("sar_file_given_twice_as_dot_slash",
         ALIGN + ["opt.tif", "--sar", "sar_vv.tif", "--sar",
                  "./sar_vv.tif", "x.tif"], 1,
         r"SAR file 'sar_vv\.tif' is given twice \(also as "
         r"'\./sar_vv\.tif'\)", setup=sar_files),
    Case("sar_given_positionally_and_by_option",
         ["train", "-q"] + TRAIN + ["opt.tif", "sar.tif", "--sar",
                                    "sar.tif", "m.mmcl"], 1,
         r"'sar\.tif' is given as both optical and SAR"),
    Case("sar_option_and_the_output_forgotten",
         ["train", "-q", "--overwrite"] + TRAIN +
         ["B01.tif", "B02.tif", "--sar", "sar.tif"], 1,
         r"output 'B02\.tif' is .*--overwrite replaces only an mmcl model "
         r"file"),
]


# Inputs checked against what the model recorded (band names, statistics),
# and training inputs given the wrong way round (src/model/input_check.c).
def raster_copy(src, dst, values=None, names=None, bands=None):
    """A GeoTIFF copy of @p src: bands reordered (1-based list), values
    mapped by @p values(array), band descriptions set (None: kept; "": none)."""
    def f(d):
        gdal.Translate(os.path.join(d, dst), os.path.join(d, src),
                       bandList=bands)
        ds = gdal.Open(os.path.join(d, dst), gdal.GA_Update)
        for b in range(ds.RasterCount):
            band = ds.GetRasterBand(b + 1)
            if values:
                band.WriteArray(values(band.ReadAsArray()))
            if names is not None:
                band.SetDescription(names[b] if names else "")
        ds = None
    return f


def linear(a):
    return np.power(10.0, a / 10.0).astype(np.float32)


def steps(*fs):
    def f(d):
        for g in fs:
            g(d)
    return f


def mmcl_step(*args):
    """Runs mmcl in the case's folder as part of its setup."""
    def f(d):
        p = subprocess.run([MMCL, args[0], "-q"] + list(args[1:]),
                           cwd=d, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("setup: mmcl %s: %s" % (args, p.stderr))
    return f


def note(name, pattern):
    """The output's MMCL metadata holds a note matching @p pattern."""
    def f(t, d):
        ds = gdal.Open(os.path.join(d, name))
        notes = [v for k, v in ds.GetMetadata("MMCL").items()
                 if k.startswith("INPUT_NOTE_")]
        t.assertTrue(any(re.search(pattern, v) for v in notes), notes)
    return f


def plugin_env(plugin):
    """The environment for a GDAL program that loads @p plugin: in a
    sanitizer build, its runtimes preloaded (they must come first)."""
    env = dict(os.environ)
    ldd = subprocess.run(["ldd", plugin], capture_output=True, text=True)
    runtimes = re.findall(r"=> (\S*lib(?:asan|ubsan)\.so\S*)", ldd.stdout)
    if runtimes:
        env["LD_PRELOAD"] = ":".join(runtimes)
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    return env


def lazy_note(name, pattern):
    """The lazy product, opened by GDAL through the plugin, has the note in
    its MMCL metadata."""
    def f(t, d):
        plugin = os.path.join(os.path.dirname(os.path.abspath(MMCL)),
                              "plugin")
        p = subprocess.run(["gdalinfo", "-mdd", "MMCL", "--config",
                            "GDAL_DRIVER_PATH", plugin, name], cwd=d,
                           capture_output=True, text=True,
                           env=plugin_env(os.path.join(plugin,
                                                       "gdal_MMCL.so")))
        t.assertEqual(p.returncode, 0, p.stderr)
        t.assertRegex(p.stdout, r"INPUT_NOTE_1=.*" + pattern)
        t.assertRegex(p.stderr, r"Warning \d+: MMCL: .*" + pattern)
    return f


def model_note(name, pattern):
    def f(t, d):
        meta = read_safetensors(os.path.join(d, name))[0]
        t.assertTrue(any(re.search(pattern, n)
                         for n in meta.get("input_notes", [])), meta)
    return f


def no_model_note(name):
    def f(t, d):
        t.assertNotIn("input_notes", read_safetensors(
            os.path.join(d, name))[0])
    return f


PERMUTED = raster_copy("opt.tif", "perm.tif", bands=[2, 1] + list(range(3, 9)),
                       names=["B2", "B1"] + ["B%d" % k for k in range(3, 9)])
RENAMED = raster_copy("opt.tif", "renamed.tif",
                      names=["B%02d" % k for k in range(1, 9)])
LINEAR = raster_copy("sar.tif", "lin.tif", values=linear)
EMBED = ["embed", "-q", "model.mmcl"]

MODEL_CHECKS = [
    Case("embed_modalities_swapped",
         EMBED + ["sar.tif", "opt.tif", "e.tif"], 1,
         r"the optical and SAR look swapped: the optical input 'sar\.tif' "
         r"has the bands the model was trained with as SAR \(VV, VH, C3, "
         r"C4\)", absent=["e.tif"]),
    Case("embed_modalities_swapped_same_band_counts",
         ["embed", "-q", "m4.mmcl", "sar.tif", "opt4.tif", "e.tif"], 1,
         r"the optical and SAR look swapped: the optical input 'sar\.tif' "
         r"has the bands the model was trained with as SAR",
         setup=steps(raster_copy("opt.tif", "opt4.tif", bands=[1, 2, 3, 4]),
                     mmcl_step("train", *TRAIN, "opt4.tif", "sar.tif",
                               "m4.mmcl")),
         absent=["e.tif"]),
    Case("embed_modalities_swapped_seen_from_values",
         ["embed", "-q", "m4.mmcl", "sarnd.tif", "opt4nd.tif", "e.tif"], 1,
         r"the optical and SAR look swapped: the values of the optical "
         r"input 'sarnd\.tif' match the model's SAR statistics",
         setup=steps(raster_copy("opt.tif", "opt4.tif", bands=[1, 2, 3, 4]),
                     raster_copy("opt.tif", "opt4nd.tif", bands=[1, 2, 3, 4],
                                 names=""),
                     raster_copy("sar.tif", "sarnd.tif", names=""),
                     mmcl_step("train", *TRAIN, "opt4.tif", "sar.tif",
                               "m4.mmcl")),
         absent=["e.tif"]),
    # The same file as both is refused by the pair (same_file_as_optical_
    # and_sar); a copy of the SAR given as optical is caught by its bands.
    Case("embed_a_copy_of_the_sar_as_optical",
         ["embed", "-q", "m4.mmcl", "sar2.tif", "sar.tif", "e.tif"], 1,
         r"the optical input 'sar2\.tif' has the bands the model was trained "
         r"with as SAR \(VV, VH, C3, C4\), as the SAR input 'sar\.tif' has: "
         r"it is not an optical raster",
         setup=steps(raster_copy("opt.tif", "opt4.tif", bands=[1, 2, 3, 4]),
                     copy("sar.tif", "sar2.tif"),
                     mmcl_step("train", *TRAIN, "opt4.tif", "sar.tif",
                               "m4.mmcl")),
         absent=["e.tif"]),
    Case("embed_band_names_differ_same_band_counts_warns",
         ["embed", "-q", "m4.mmcl", "ren4.tif", "sar.tif", "e.tif"], 0,
         warning=r"the optical band names of 'ren4\.tif' differ from the "
         r"model's: band 1 'B01' where the model has 'B1'",
         setup=steps(raster_copy("opt.tif", "opt4.tif", bands=[1, 2, 3, 4]),
                     raster_copy("opt.tif", "ren4.tif", bands=[1, 2, 3, 4],
                                 names=["B01", "B02", "B03", "B04"]),
                     mmcl_step("train", *TRAIN, "opt4.tif", "sar.tif",
                               "m4.mmcl")),
         check=note("e.tif", r"band 1 'B01'")),
    Case("embed_band_counts_swapped",
         ["embed", "-q", "model.mmcl", "sarnd.tif", "optnd.tif", "e.tif"], 1,
         r"the optical and SAR look swapped: the model expects 8 optical and "
         r"4 SAR bands, the optical input 'sarnd\.tif' has 4",
         setup=steps(raster_copy("opt.tif", "optnd.tif", names=""),
                     raster_copy("sar.tif", "sarnd.tif", names="")),
         absent=["e.tif"]),
    Case("embed_bands_reordered",
         EMBED + ["perm.tif", "sar.tif", "e.tif"], 1,
         r"the optical bands of 'perm\.tif' are in another order than the "
         r"model's: the input has B2, B1, B3, .*the model was trained with "
         r"B1, B2, B3, .*gdal_translate -b 2 -b 1 -b 3 -b 4",
         setup=PERMUTED, absent=["e.tif"]),
    Case("embed_stacked_files_reordered",
         ["embed", "-q", "m3.mmcl", "B02.tif", "B01.tif", "B03.tif",
          "sar.tif", "e.tif"], 1,
         r"the optical bands of 'B02\.tif' \.\. 'B03\.tif' \(3 files\) are "
         r"in another order than the model's: the input has B2, B1, B3.*"
         r"give the files in the model's order",
         setup=mmcl_step("train", *TRAIN, "B01.tif", "B02.tif", "B03.tif",
                         "sar.tif", "m3.mmcl"),
         absent=["e.tif"]),
    Case("embed_band_names_differ_warns",
         EMBED + ["renamed.tif", "sar.tif", "e.tif"], 0,
         warning=r"the optical band names of 'renamed\.tif' differ from the "
         r"model's: band 1 'B01' where the model has 'B1'",
         setup=RENAMED, check=note("e.tif", r"band 1 'B01' where the model "
                                   r"has 'B1'")),
    Case("embed_without_band_descriptions_warns",
         EMBED + ["optnd.tif", "sar.tif", "e.tif"], 0,
         warning=r"the optical input 'optnd\.tif' has no band descriptions, "
         r"so its band order cannot be checked",
         setup=raster_copy("opt.tif", "optnd.tif", names=""),
         check=note("e.tif", r"no band descriptions")),
    Case("embed_the_same_inputs_give_no_warning",
         EMBED + ["opt.tif", "sar.tif", "e.tif"], 0, warning=False,
         check=lambda t, d: t.assertEqual(
             [k for k in gdal.Open(os.path.join(d, "e.tif")).GetMetadata(
                 "MMCL") if k.startswith("INPUT_NOTE")], [])),
    Case("embed_linear_sar_to_db_model",
         EMBED + ["opt.tif", "lin.tif", "e.tif"], 1,
         r"the SAR 'lin\.tif' looks like linear power \(no negative value, "
         r"band means .*\) but the model was trained on SAR in dB \(band "
         r"means .*\): convert it to dB first \(mmcl align --sar-db",
         setup=LINEAR, absent=["e.tif"]),
    Case("embed_linear_sar_with_sar_db_ok",
         ["embed", "-q", "mlin.mmcl", "opt.tif", "lin.tif", "e.tif"], 0,
         warning=False,
         setup=steps(LINEAR, mmcl_step("train", "--sar-db", *TRAIN,
                                       "opt.tif", "lin.tif", "mlin.mmcl"))),
    Case("embed_linear_sar_aligned_with_sar_db_ok",
         EMBED + ["opt.tif", "lindb.tif", "e.tif"], 0, warning=False,
         setup=steps(LINEAR, mmcl_step("align", "--sar-db", "opt.tif",
                                       "lin.tif", "lindb.tif"))),
    Case("embed_db_sar_to_a_sar_db_model",
         ["embed", "-q", "mlin.mmcl", "opt.tif", "sar.tif", "e.tif"], 1,
         r"the SAR 'sar\.tif' looks like dB \(mostly negative values, band "
         r"means .*\) but the model converts its SAR from linear power to dB "
         r"\(it was trained with --sar-db\): give the SAR in linear power",
         setup=steps(LINEAR, mmcl_step("train", "--sar-db", *TRAIN,
                                       "opt.tif", "lin.tif", "mlin.mmcl")),
         absent=["e.tif"]),
    Case("embed_db_sar_to_a_linear_model",
         ["embed", "-q", "mlin.mmcl", "opt.tif", "sar.tif", "e.tif"], 1,
         r"the SAR 'sar\.tif' looks like dB .* but the model was trained on "
         r"SAR in linear power .*--sar-linear",
         setup=steps(LINEAR, mmcl_step("train", *TRAIN, "opt.tif",
                                       "lin.tif", "mlin.mmcl")),
         absent=["e.tif"]),
    Case("embed_reflectance_scaled_by_10000",
         EMBED + ["dn.tif", "sar.tif", "e.tif"], 1,
         r"the optical values of 'dn\.tif' look scaled up by about 10000 "
         r"against the model's .*gdal_translate -ot Float32 -scale 0 10000 "
         r"0 1",
         setup=raster_copy("opt.tif", "dn.tif", values=lambda a: a * 10000),
         absent=["e.tif"]),
    Case("embed_values_far_from_training_warns",
         EMBED + ["bright.tif", "sar.tif", "e.tif"], 0,
         warning=r"the optical values of 'bright\.tif' are far from those "
         r"the model was trained on: 8 of 8 bands",
         setup=raster_copy("opt.tif", "bright.tif", values=lambda a: a + 0.5),
         check=note("e.tif", r"another season or sensor may be legitimate")),
    Case("infoloss_bands_reordered",
         ["infoloss", "-q", "model.mmcl", "perm.tif", "sar.tif", "l.tif",
          "--report", "l.json"], 1,
         r"the optical bands of 'perm\.tif' are in another order",
         setup=PERMUTED, absent=["l.tif", "l.json"]),
    Case("infoloss_linear_sar_to_db_model",
         ["infoloss", "-q", "model.mmcl", "opt.tif", "lin.tif", "l.tif"], 1,
         r"the SAR 'lin\.tif' looks like linear power", setup=LINEAR,
         absent=["l.tif"]),
    Case("infoloss_band_names_differ_warns",
         ["infoloss", "-q", "model.mmcl", "renamed.tif", "sar.tif",
          "l.tif"], 0, warning=r"the optical band names of 'renamed\.tif' "
         r"differ", setup=RENAMED,
         check=note("l.tif", r"band 1 'B01' where the model has 'B1'")),
    Case("probe_bands_reordered",
         ["probe", "-q", "model.mmcl", "perm.tif", "sar.tif", "labels.tif"],
         1, r"the optical bands of 'perm\.tif' are in another order",
         setup=steps(PERMUTED, lambda d: shutil.copyfile(
             os.path.join(SAMPLE, "labels.tif"),
             os.path.join(d, "labels.tif")))),
    Case("lazy_embed_modalities_swapped",
         EMBED + ["--lazy", "sar.tif", "opt.tif", "l.mmcl.json"], 1,
         r"the optical and SAR look swapped", absent=["l.mmcl.json"]),
    Case("lazy_infoloss_linear_sar_to_db_model",
         ["infoloss", "-q", "--lazy", "model.mmcl", "opt.tif", "lin.tif",
          "l.mmcl.json"], 1, r"the SAR '.*/lin\.tif' looks like linear "
         r"power",
         setup=LINEAR, absent=["l.mmcl.json"]),
    Case("lazy_embed_band_names_differ_warns",
         EMBED + ["--lazy", "renamed.tif", "sar.tif", "l.mmcl.json"], 0,
         warning=r"the optical band names of '.*renamed\.tif' differ",
         setup=RENAMED,
         check=lazy_note("l.mmcl.json", r"band 1 'B01' where the model has "
                         r"'B1'")),
    Case("train_modalities_swapped_by_names",
         ["train", "-q"] + TRAIN + ["sar.tif", "opt.tif", "m.mmcl"], 1,
         r"optical band 1 of 'sar\.tif' is named 'VV', a SAR polarisation: "
         r"the optical and SAR look swapped", absent=["m.mmcl"]),
    Case("train_sar_named_as_optical_bands",
         ["train", "-q"] + TRAIN + ["opt.tif", "B01.tif", "m.mmcl"], 1,
         r"the SAR 'B01\.tif' has bands named as optical \(Sentinel-2\) "
         r"bands, B1: the optical and SAR look swapped", absent=["m.mmcl"]),
    Case("train_sar_file_among_the_optical_files",
         ["train", "-q"] + TRAIN + ["B01.tif", "B02.tif", "vv.tif",
                                    "sar.tif", "m.mmcl"], 1,
         r"optical band 3 of 'B01\.tif' \.\. 'vv\.tif' \(3 files\) is named "
         r"'VV'", setup=raster_copy("al.tif", "vv.tif", bands=[1]),
         absent=["m.mmcl"]),
    Case("train_optical_values_look_like_db_warns",
         ["train", "-q"] + TRAIN + ["sarnd.tif", "optnd.tif", "m.mmcl"], 0,
         warning=r"4 of the 4 optical bands of 'sarnd\.tif' have mostly "
         r"negative values .*are the optical and SAR swapped\?",
         setup=steps(raster_copy("opt.tif", "optnd.tif", names=""),
                     raster_copy("sar.tif", "sarnd.tif", names="")),
         check=model_note("m.mmcl", r"are the optical and SAR swapped")),
    Case("train_legitimate_inputs_give_no_note",
         ["train", "-q"] + TRAIN + ["opt.tif", "sar.tif", "m.mmcl"], 0,
         warning=False, check=no_model_note("m.mmcl")),
]



# Training settings whose figures mean little: warned about at train, kept
# in the model ("warnings") and carried into every output made with it
# (src/operations/train.c, run_warnings); and the validity mask (MASK).
def model_warning(name, code, pattern):
    """The model's metadata has the warning @p code, message @p pattern."""
    def f(t, d):
        ws = read_safetensors(os.path.join(d, name))[0].get("warnings", [])
        t.assertTrue(any(w["code"] == code and re.search(pattern,
                                                        w["message"])
                         for w in ws), ws)
    return f


def model_warning_codes(name, codes):
    """The model's metadata has exactly these warning codes (none: no
    "warnings" key)."""
    def f(t, d):
        meta = read_safetensors(os.path.join(d, name))[0]
        t.assertEqual([w["code"] for w in meta.get("warnings", [])], codes)
    return f


def mmcl_metadata(name, items, plugin=False):
    """The MMCL metadata of @p name (a lazy product: opened through the
    plugin) has each KEY=regex of @p items."""
    def f(t, d):
        if plugin:
            pdir = os.path.join(os.path.dirname(os.path.abspath(MMCL)),
                                "plugin")
            p = subprocess.run(["gdalinfo", "-mdd", "MMCL", "--config",
                                "GDAL_DRIVER_PATH", pdir, name], cwd=d,
                               capture_output=True, text=True,
                               env=plugin_env(os.path.join(pdir,
                                                           "gdal_MMCL.so")))
            t.assertEqual(p.returncode, 0, p.stderr)
            md = dict(re.findall(r"(?m)^  ([A-Z0-9_]+)=(.*)$", p.stdout))
        else:
            md = gdal.Open(os.path.join(d, name)).GetMetadata("MMCL")
        for k, pattern in items.items():
            t.assertIn(k, md)
            t.assertRegex(md[k], pattern)
    return f


def report_warnings(name, codes, mask="own"):
    def f(t, d):
        with open(os.path.join(d, name)) as fp:
            r = json.load(fp)
        t.assertEqual([w["code"] for w in r["warnings"]], codes)
        t.assertEqual(r["mask"], mask)
    return f


def checks(*fs):
    def f(t, d):
        for g in fs:
            g(t, d)
    return f


def nan_where(name, like, nonempty=True):
    """Every band of @p name is NaN exactly where band 1 of @p like is
    (the fixture's joint embedding: where either patch is invalid)."""
    def f(t, d):
        ref = gdal.Open(os.path.join(d, like))  # alive while read
        want = np.isnan(ref.GetRasterBand(1).ReadAsArray())
        ds = gdal.Open(os.path.join(d, name))
        for b in range(ds.RasterCount):
            got = np.isnan(ds.GetRasterBand(b + 1).ReadAsArray())
            t.assertTrue((got == want).all(), "band %d" % (b + 1))
        t.assertEqual(bool(want.any()), nonempty)
    return f


# SAR of sample_data: 4 bands, so a 1 x 1 patch has 4 values.
AS_LARGE = ["--objective", "cca", "--dim", "4", "--patch", "1", "--samples",
            "2000"]
AS_LARGE_MSG = (r"the SAR representation has K = 4 dimensions for a SAR "
                r"patch of d = 4 values \(4 bands x 1x1\): .*information "
                r"loss is 0 by construction; use a smaller --dim or a "
                r"larger --patch")
WIDE = mmcl_step("train", *AS_LARGE, "opt.tif", "sar.tif", "wide.mmcl")

MODEL_WARNINGS = [
    Case("train_representation_as_large_as_the_sar_warns",
         ["train", "-q"] + AS_LARGE + ["opt.tif", "sar.tif", "m.mmcl"], 0,
         warning=AS_LARGE_MSG,
         check=model_warning("m.mmcl", "representation_as_large_as_modality",
                             AS_LARGE_MSG)),
    Case("train_clip_that_did_not_learn_warns",
         ["train", "-q", "--objective", "clip", "--dim", "1", "--epochs",
          "2", "--batch", "256", "--samples", "2000", "opt.tif", "sar.tif",
          "m.mmcl"], 0,
         warning=r"clip training did not learn: its final InfoNCE loss "
         r"[0-9.]+ \(mean of the last epoch\) is not 0\.15 or more below "
         r"the chance level log\(batch 256\) = 5\.545",
         check=model_warning_codes("m.mmcl", ["training_did_not_learn"])),
    Case("train_clip_that_learned_gives_no_warning",
         ["train", "-q", "--objective", "clip", "--epochs", "5", "--batch",
          "256", "--samples", "4000", "opt.tif", "sar.tif", "m.mmcl"], 0,
         warning=False, check=model_warning_codes("m.mmcl", [])),
    Case("train_too_few_samples_warns",
         ["train", "-q", "--objective", "cca", "--dim", "2", "--samples",
          "500", "opt.tif", "sar.tif", "m.mmcl"], 0,
         warning=r"only 500 valid patch pairs were drawn for the 72 \+ 36 "
         r"values of an optical and a SAR patch \(fewer than 10 x 108 = "
         r"1080\)",
         check=model_warning_codes("m.mmcl", ["too_few_samples"])),
    Case("train_enough_samples_give_no_warning",
         ["train", "-q", "--objective", "cca", "--dim", "2", "--samples",
          "1080", "opt.tif", "sar.tif", "m.mmcl"], 0,
         warning=False, check=model_warning_codes("m.mmcl", [])),
    Case("infoloss_carries_the_models_warnings",
         ["infoloss", "-q", "wide.mmcl", "opt.tif", "sar.tif", "l.tif",
          "--report", "r.json"], 0, setup=WIDE,
         warning=r"the model was trained with a warning: " + AS_LARGE_MSG,
         check=checks(
             report_warnings("r.json",
                             ["representation_as_large_as_modality"]),
             mmcl_metadata("l.tif", {
                 "MODEL_WARNING_1": r"^representation_as_large_as_modality: "
                                    + AS_LARGE_MSG,
                 "MASK": "^own$"}))),
    Case("infoloss_of_a_model_without_warnings_reports_none",
         ["infoloss", "-q", "--mask", "any", "model.mmcl", "opt.tif",
          "sar.tif", "l.tif", "--report", "r.json"], 0, warning=False,
         check=checks(report_warnings("r.json", [], "any"),
                      mmcl_metadata("l.tif", {"MASK": "^any$"}))),
    Case("embed_carries_the_models_warnings",
         ["embed", "-q", "wide.mmcl", "opt.tif", "sar.tif", "e.tif"], 0,
         setup=WIDE,
         warning=r"the model was trained with a warning: " + AS_LARGE_MSG,
         check=mmcl_metadata("e.tif", {
             "MODEL_WARNING_1": r"^representation_as_large_as_modality: "})),
    Case("embed_lazy_carries_the_models_warnings_and_mask",
         ["embed", "-q", "--lazy", "--mask", "any", "wide.mmcl", "opt.tif",
          "sar.tif", "e.mmcl.json"], 0, setup=WIDE,
         check=mmcl_metadata("e.mmcl.json", {
             "MODEL_WARNING_1": r"^representation_as_large_as_modality: ",
             "MASK": "^any$"}, plugin=True)),
    Case("embed_optical_with_mask_any_is_nan_where_the_sar_is_invalid",
         ["embed", "-q", "--mask", "any", "--modality", "optical",
          "model.mmcl", "opt.tif", "sar.tif", "e.tif"], 0, warning=False,
         check=checks(nan_where("e.tif", "emb.tif"),
                      mmcl_metadata("e.tif", {"MASK": "^any$"}))),
    Case("embed_optical_with_mask_own_is_valid_where_the_optical_is",
         ["embed", "-q", "--modality", "optical", "model.mmcl", "opt.tif",
          "sar.tif", "e.tif"], 0, warning=False,
         check=nan_where("e.tif", "e.tif", nonempty=False)),
    Case("embed_mask_unknown_value",
         ["embed", "-q", "--mask", "both", "model.mmcl", "opt.tif",
          "sar.tif", "e.tif"], 1,
         r"mmcl embed: --mask must be one of own\|any, got 'both'",
         absent=["e.tif"]),
]

PROBE = ["probe", "-q", "model.mmcl", "opt.tif", "sar.tif", "labels.tif"]


def sample_labels(d):
    shutil.copyfile(os.path.join(SAMPLE, "labels.tif"),
                    os.path.join(d, "labels.tif"))


def earlier_probe(d):
    """The labels, and the CSV and map of an earlier probe (another
    sample, so other figures)."""
    sample_labels(d)
    p = subprocess.run([MMCL] + PROBE + ["--samples", "500", "--csv",
                                         "p.csv", "--map", "p.tif"],
                       cwd=d, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("setup: %s" % p.stderr)


def no_valid_label(d):
    """labels.tif on the optical grid, every pixel -1 (invalid)."""
    src = gdal.Open(os.path.join(d, "opt.tif"))
    ds = gdal.GetDriverByName("GTiff").Create(
        os.path.join(d, "labels.tif"), src.RasterXSize, src.RasterYSize, 1,
        gdal.GDT_Int16)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    ds.GetRasterBand(1).Fill(-1)
    ds = None


def probe_outputs(t, d):
    m = gdal.Open(os.path.join(d, "p.tif"))
    o = gdal.Open(os.path.join(d, "opt.tif"))
    t.assertEqual(m.GetMetadataItem("PRODUCT", "MMCL"), "probe_map")
    t.assertEqual(m.GetGeoTransform(), o.GetGeoTransform())
    t.assertEqual(m.GetRasterBand(1).DataType, gdal.GDT_Int32)
    t.assertEqual(m.GetRasterBand(1).GetNoDataValue(), -1)
    with open(os.path.join(d, "p.csv")) as f:
        t.assertTrue(f.readline().startswith(
            "representation,dim,class,support,precision,recall,f1,iou,"))


PROBE_CASES = [
    Case("probe_writes_csv_and_map",
         PROBE + ["--csv", "p.csv", "--map", "p.tif"], 0,
         setup=sample_labels, check=probe_outputs),
    Case("probe_csv_exists_refused",
         PROBE + ["--csv", "p.csv", "--map", "q.tif"], 1,
         r"CSV 'p\.csv' exists; use --overwrite to replace it",
         setup=earlier_probe, absent=["q.tif"]),
    Case("probe_map_exists_refused",
         PROBE + ["--csv", "q.csv", "--map", "p.tif"], 1,
         r"output 'p\.tif' exists; use --overwrite to replace it",
         setup=earlier_probe, absent=["q.csv"]),
    Case("probe_overwrite_replaces_its_outputs",
         PROBE + ["--overwrite", "--csv", "p.csv", "--map", "p.tif"], 0,
         setup=earlier_probe, replaced=["p.csv", "p.tif"],
         check=probe_outputs),
    Case("probe_map_overwrite_not_a_probe_map",
         PROBE + ["--overwrite", "--map", "emb.tif"], 1,
         r"output 'emb\.tif' is an embedding map written by mmcl embed; "
         r"--overwrite replaces only a prediction map written by mmcl probe",
         setup=sample_labels),
    Case("probe_csv_overwrite_not_a_probe_csv",
         PROBE + ["--overwrite", "--csv", "report.json"], 1,
         r"CSV 'report\.json' is an information-loss report; --overwrite "
         r"replaces only a CSV of figures written by mmcl probe",
         setup=sample_labels),
    Case("probe_csv_is_the_label_raster",
         PROBE + ["--overwrite", "--csv", "labels.tif"], 1,
         r"CSV 'labels\.tif' is also an input of this command",
         setup=sample_labels),
    Case("probe_map_is_an_input",
         PROBE + ["--overwrite", "--map", "opt.tif"], 1,
         r"output 'opt\.tif' is also an input of this command",
         setup=sample_labels),
    Case("probe_csv_and_map_same_file",
         PROBE + ["--csv", "x.tif", "--map", "x.tif"], 1,
         r"CSV 'x\.tif' and output 'x\.tif' are the same file",
         setup=sample_labels, absent=["x.tif"]),
    Case("probe_csv_folder_missing",
         PROBE + ["--csv", "nofolder/p.csv", "--map", "p.tif"], 1,
         r"output folder 'nofolder' of CSV 'nofolder/p\.csv' does not exist",
         setup=sample_labels, absent=["p.tif"]),
    Case("probe_map_format_cannot_hold_classes",
         PROBE + ["--csv", "p.csv", "--map", "p.png"], 1,
         r"format PNG cannot hold Int32 values",
         setup=sample_labels, absent=["p.csv", "p.png"]),
    Case("probe_map_full_needs_shared_private",
         PROBE + ["--csv", "p.csv", "--map", "p.tif",
                  "--map-representation", "full"], 1,
         r"--map-representation full\) exists for shared-private models "
         r"only",
         setup=sample_labels, absent=["p.csv", "p.tif"]),
    Case("probe_error_leaves_no_output",
         PROBE + ["--csv", "p.csv", "--map", "p.tif"], 1,
         r"no pixel of the label raster 'labels\.tif' holds a valid label",
         setup=no_valid_label, absent=["p.csv", "p.tif"]),
]



# Embedding rasters probed beside the model (probe --embedding).
def far_embedding(d):
    """sample_labels, and far.tif: emb.tif placed 1000 km east."""
    sample_labels(d)
    src = gdal.Open(os.path.join(d, "emb.tif"))
    gt = src.GetGeoTransform()
    x0, y0 = gt[0] + 1e6, gt[3]
    gdal.Translate(os.path.join(d, "far.tif"), src,
                   outputBounds=[x0, y0, x0 + gt[1] * src.RasterXSize,
                                 y0 + gt[5] * src.RasterYSize])


def nan_embedding(d):
    """sample_labels, and nan.tif: two Float32 bands on the optical grid,
    NaN everywhere."""
    sample_labels(d)
    src = gdal.Open(os.path.join(d, "opt.tif"))
    ds = gdal.GetDriverByName("GTiff").Create(
        os.path.join(d, "nan.tif"), src.RasterXSize, src.RasterYSize, 2,
        gdal.GDT_Float32)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    for b in (1, 2):
        ds.GetRasterBand(b).Fill(float("nan"))
    ds = None


def embedding_probe_outputs(name, path):
    def f(t, d):
        probe_outputs(t, d)
        m = gdal.Open(os.path.join(d, "p.tif"))
        t.assertEqual(m.GetMetadataItem("REPRESENTATION", "MMCL"), name)
        t.assertEqual(m.GetMetadataItem("EMBEDDING", "MMCL"), path)
        with open(os.path.join(d, "p.csv")) as fp:
            rows = [line.split(",")[0] for line in fp]
        t.assertIn(name, rows)
    return f


AUDIT_LAZY = ["audit", "-q", "--lazy", "emb.tif", "opt.tif", "sar.tif"]


def earlier_lazy_audit(d):
    """a.mmcl.json (and its style a.mmcl.qml): an earlier lazy audit of
    emb.tif."""
    p = subprocess.run([MMCL] + AUDIT_LAZY + ["a.mmcl.json"], cwd=d,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("setup: %s" % p.stderr)


def audit_descriptor(t, d):
    with open(os.path.join(d, "a.mmcl.json")) as f:
        j = json.load(f)
    t.assertEqual(j["product"], "audit")
    t.assertEqual(j["embedding"], "emb.tif")
    t.assertEqual(j["fit"]["k"], 2)
    t.assertTrue(os.path.exists(os.path.join(d, "a.mmcl.qml")))


PROBE_EMB_CASES = [
    Case("probe_embedding_writes_csv_and_map",
         PROBE + ["--embedding", "e=emb.tif", "--csv", "p.csv", "--map",
                  "p.tif", "--map-representation", "e"], 0,
         setup=sample_labels, check=embedding_probe_outputs("e", "emb.tif")),
    Case("probe_embedding_not_a_raster",
         PROBE + ["--embedding", "report.json", "--csv", "p.csv", "--map",
                  "p.tif"], 1,
         r"cannot open embedding raster 'report\.json': .*not recognized "
         r"as a supported file format",
         setup=sample_labels, absent=["p.csv", "p.tif"]),
    Case("probe_embedding_missing",
         PROBE + ["--embedding", "none.tif", "--csv", "p.csv"], 1,
         r"embedding raster 'none\.tif' does not exist",
         setup=sample_labels, absent=["p.csv"]),
    Case("probe_embedding_no_overlap",
         PROBE + ["--embedding", "far.tif", "--csv", "p.csv", "--map",
                  "p.tif"], 1,
         r"the embedding raster 'far\.tif' does not overlap the optical "
         r"raster: no pixel in common",
         setup=far_embedding, absent=["p.csv", "p.tif"]),
    Case("probe_embedding_band_missing",
         PROBE + ["--embedding", "emb.tif", "--embedding-bands", "1,5",
                  "--csv", "p.csv"], 1,
         r"embedding raster 'emb\.tif' has 2 bands: no band '5'",
         setup=sample_labels, absent=["p.csv"]),
    Case("probe_embedding_dequantize_does_not_fit",
         PROBE + ["--embedding", "emb.tif", "--dequantize", "alphaearth",
                  "--csv", "p.csv"], 1,
         r"embedding raster 'emb\.tif' has Float32 bands: the alphaearth "
         r"de-quantization reads int8 codes",
         setup=sample_labels, absent=["p.csv"]),
    Case("probe_embedding_never_valid",
         PROBE + ["--embedding", "nan.tif", "--csv", "p.csv", "--map",
                  "p.tif"], 1,
         r"none of the \d+ labelled pixels has a valid 3x3 patch in both "
         r"the optical and the SAR raster and a valid value in the "
         r"embedding raster",
         setup=nan_embedding, absent=["p.csv", "p.tif"]),
    Case("probe_embedding_name_taken",
         PROBE + ["--embedding", "joint=emb.tif", "--csv", "p.csv"], 1,
         r"the embedding raster 'emb\.tif' would be named 'joint', a name "
         r"the probe report already uses: name it with --embedding "
         r"NAME=FILE",
         setup=sample_labels, absent=["p.csv"]),
    Case("probe_embedding_names_clash",
         PROBE + ["--embedding", "emb.tif", "--embedding", "emb.mmcl.json",
                  "--csv", "p.csv"], 1,
         r"the embedding rasters 'emb\.tif' and 'emb\.mmcl\.json' would "
         r"both be named 'emb'",
         setup=sample_labels, absent=["p.csv"]),
    Case("probe_map_representation_unknown",
         PROBE + ["--embedding", "emb.tif", "--csv", "p.csv", "--map",
                  "p.tif", "--map-representation", "embb"], 1,
         r"--map-representation embb names no representation of this "
         r"probe; it has raw_optical, raw_sar, aligned_optical, "
         r"aligned_sar, joint, emb",
         setup=sample_labels, absent=["p.csv", "p.tif"]),
    Case("probe_map_is_the_embedding_raster",
         PROBE + ["--embedding", "emb.tif", "--overwrite", "--map",
                  "emb.tif"], 1,
         r"output 'emb\.tif' is also an input of this command",
         setup=sample_labels),
    # The lazy audit map (audit --lazy).
    Case("audit_lazy_writes_descriptor_and_style",
         AUDIT_LAZY + ["a.mmcl.json"], 0, check=audit_descriptor),
    Case("audit_lazy_format_refused",
         AUDIT_LAZY + ["-of", "GTiff", "a.mmcl.json"], 1,
         r"mmcl audit: -of does not apply to a lazy descriptor \(--lazy\): "
         r"the maps are computed when read", absent=["a.mmcl.json"]),
    Case("audit_lazy_report_refused",
         AUDIT_LAZY + ["--report", "r.json", "a.mmcl.json"], 1,
         r"mmcl audit: --report does not apply to a lazy descriptor",
         absent=["a.mmcl.json", "r.json"]),
    Case("audit_lazy_json_refused",
         AUDIT_LAZY + ["--json", "a.mmcl.json"], 2,
         r"mmcl audit: --json needs the figures, which --lazy does not "
         r"compute", absent=["a.mmcl.json"]),
    Case("audit_lazy_overwrite_replaces_its_descriptor",
         AUDIT_LAZY + ["--overwrite", "--non-redundancy", "a.mmcl.json"], 0,
         setup=earlier_lazy_audit, replaced=["a.mmcl.json", "a.mmcl.qml"],
         check=audit_descriptor),
    Case("audit_lazy_overwrite_not_an_audit_descriptor",
         AUDIT_LAZY + ["--overwrite", "emb.mmcl.json"], 1,
         r"output 'emb\.mmcl\.json' is a lazy embedding descriptor; "
         r"--overwrite replaces only a lazy audit descriptor"),
    Case("audit_lazy_descriptor_names_its_embedding_raster",
         ["rgb", "-q", "--overwrite", "a.mmcl.json", "emb.tif"], 1,
         r"output 'emb\.tif' is also an input of this command",
         setup=earlier_lazy_audit),
]


# A refused option is named by the flag given, and nothing is written
# (the library's callers get the key: tests/test_options.c).
EDGE_CASES = [
    Case("embed_choice_refused_naming_the_flag",
         ["embed", "-q", "--modality", "both", "model.mmcl", "opt.tif",
          "sar.tif", "e.tif"], 1,
         r"mmcl embed: --modality must be one of optical\|sar\|joint, got "
         r"'both'", absent=["e.tif"]),
    Case("train_value_out_of_range_naming_the_flag",
         ["train", "-q", "--dim", "0", "opt.tif", "sar.tif", "m.mmcl"], 1,
         r"mmcl train: --dim 0 is out of range \[1, 1024\]",
         absent=["m.mmcl"]),
    Case("rgb_stretch_refused_naming_the_flag",
         ["rgb", "-q", "--stretch", "98,2", "emb.tif", "p.tif"], 1,
         r"mmcl rgb: --stretch must be two percentiles", absent=["p.tif"]),
]


def style_is(path, renderer):
    """A check: @p path is a QGIS style whose renderer is @p renderer."""
    def f(t, d):
        with open(os.path.join(d, path)) as fp:
            text = fp.read()
        t.assertTrue(text.startswith("<!DOCTYPE qgis"), path)
        t.assertIn('<rasterrenderer type="%s"' % renderer, text)
    return f


def statistics_in_the_map(t, d):
    ds = gdal.Open(os.path.join(d, "l2.tif"))
    for b in range(1, ds.RasterCount + 1):
        md = ds.GetRasterBand(b).GetMetadata()
        for k in ("MINIMUM", "MAXIMUM", "MEAN", "STDDEV"):
            t.assertIn("STATISTICS_" + k, md, "band %d" % b)
    t.assertFalse(os.path.exists(os.path.join(d, "l2.tif.aux.xml")))
    style_is("l2.qml", "singlebandpseudocolor")(t, d)


# The QGIS style (x.qml beside x.tif, x.mmcl.qml beside a descriptor) and
# the statistics written with every map: side files like GDAL's.
STYLE_CASES = [
    Case("map_written_with_its_style_and_statistics",
         ["infoloss", "-q", "model.mmcl", "opt.tif", "sar.tif", "l2.tif"],
         0, check=statistics_in_the_map),
    Case("stale_style_refused",
         ["embed", "-q", "model.mmcl", "opt.tif", "sar.tif", "e2.tif"], 1,
         r"'e2\.qml' exists: a QGIS style \(\.qml\), which would describe "
         r"the new output 'e2\.tif'; remove it, or use --overwrite",
         setup=write("e2.qml", "<qgis><!-- mine --></qgis>\n"),
         absent=["e2.tif"]),
    Case("overwrite_replaces_the_style_with_its_map",
         ["embed", "-q", "--overwrite", "--modality", "optical",
          "model.mmcl", "opt.tif", "sar.tif", "emb.tif"], 0,
         replaced=["emb.tif", "emb.qml"],
         check=style_is("emb.qml", "multibandcolor")),
    Case("overwrite_refuses_a_foreign_style",
         ["embed", "-q", "--overwrite", "model.mmcl", "opt.tif", "sar.tif",
          "emb.tif"], 1,
         r"QGIS style 'emb\.qml' is a file of another kind; --overwrite "
         r"replaces only a QGIS style \(\.qml\)",
         setup=write("emb.qml", "my notes\n")),
    Case("style_of_an_input_refused",
         ["embed", "-q", "model.mmcl", "opt.tif", "sar.tif", "opt.tiff"], 1,
         r"QGIS style 'opt\.qml' is the QGIS style of the input 'opt\.tif'; "
         r"writing it would change that input", absent=["opt.qml"]),
    Case("lazy_descriptor_written_with_its_style",
         ["infoloss", "-q", "--lazy", "model.mmcl", "opt.tif", "sar.tif",
          "l3.mmcl.json"], 0,
         check=style_is("l3.mmcl.qml", "singlebandpseudocolor")),
    Case("lazy_descriptor_stale_style_refused",
         ["embed", "-q", "--lazy", "model.mmcl", "opt.tif", "sar.tif",
          "e3.mmcl.json"], 1,
         r"'e3\.mmcl\.qml' exists: a QGIS style \(\.qml\), which would "
         r"describe the new output 'e3\.mmcl\.json'",
         setup=write("e3.mmcl.qml", "<qgis/>\n")),
    Case("overwrite_a_descriptor_replaces_its_style",
         ["embed", "-q", "--lazy", "--overwrite", "--modality", "sar",
          "model.mmcl", "opt.tif", "sar.tif", "emb.mmcl.json"], 0,
         replaced=["emb.mmcl.json", "emb.mmcl.qml"],
         check=style_is("emb.mmcl.qml", "multibandcolor")),
    Case("picture_beside_its_source_keeps_the_sources_style",
         ["rgb", "-q", "emb.tif", "emb.png"], 0),
]

# --precision bf16 where the CPU (as oneDNN sees it) has no native bf16
# products: ONEDNN_MAX_CPU_ISA=AVX2 pretends so on any x86-64 CI machine
# (a build without oneDNN refuses bf16 on every CPU, with its own reason).
NO_BF16 = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
BF16_REFUSED = (r"bf16\" needs (a CPU with AVX-512 BF16 or AMX; oneDNN "
                r"runs \w+ here \(ONEDNN_MAX_CPU_ISA=AVX2\), where bf16 "
                r"would be emulated more slowly than f32|oneDNN's bf16 "
                r"products; the encoders run on [^\n]+): use f32")
BF16_REFUSED_FLAG = r"--precision bf16 needs (a CPU|oneDNN)"


def bf16_descriptor(d):
    with open(os.path.join(d, "h.mmcl.json"), "w") as f:
        json.dump({"mmcl_descriptor": 1, "product": "embedding",
                   "model": "model.mmcl", "optical": "opt.tif",
                   "sar": "sar.tif", "precision": "bf16"}, f)


PRECISION_CASES = [
    Case("embed_bf16_refused_without_native_bf16",
         ["embed", "-q", "--precision", "bf16", "model.mmcl", "opt.tif",
          "sar.tif", "e.tif"], 1,
         BF16_REFUSED_FLAG + r"[^\n]*: use f32", env=NO_BF16,
         absent=["e.tif", "e.qml"]),
    Case("infoloss_bf16_refused_leaves_no_report",
         ["infoloss", "-q", "--precision", "bf16", "--report", "r.json",
          "model.mmcl", "opt.tif", "sar.tif", "l.tif"], 1,
         BF16_REFUSED_FLAG, env=NO_BF16,
         absent=["l.tif", "l.qml", "r.json"]),
    Case("lazy_bf16_descriptor_refused_without_native_bf16",
         ["embed", "-q", "--lazy", "--precision", "bf16", "model.mmcl",
          "opt.tif", "sar.tif", "h.mmcl.json"], 1,
         BF16_REFUSED_FLAG, env=NO_BF16,
         absent=["h.mmcl.json", "h.mmcl.qml"]),
    Case("bf16_descriptor_read_refused_naming_it",
         ["rgb", "-q", "h.mmcl.json", "p.tif"], 1,
         r"descriptor 'h\.mmcl\.json': \"precision\": \"" + BF16_REFUSED,
         setup=bf16_descriptor, env=NO_BF16, absent=["p.tif", "p.qml"]),
    Case("precision_unknown_refused",
         ["embed", "-q", "--precision", "f16", "model.mmcl", "opt.tif",
          "sar.tif", "e.tif"], 1,
         r"--precision must be one of f32\|bf16, got 'f16'",
         absent=["e.tif"]),
]

def field(name, source="opt.tif", **kw):
    """A shift field as mmcl coreg writes it (tests/cli/test_sar_shift.py),
    on the grid of @p source, 32-pixel blocks, dx 1.5, dy -0.5 unless
    given."""
    from test_sar_shift import write_field
    kw.setdefault("dx", 1.5)
    kw.setdefault("dy", -0.5)
    return lambda d: write_field(os.path.join(d, name),
                                 os.path.join(d, source), 32, **kw)


def small_optical(d):
    gdal.Translate(os.path.join(d, "small.tif"), os.path.join(d, "opt.tif"),
                   srcWin=[0, 0, 100, 100])


def trained_with_a_shift(d):
    p = subprocess.run([MMCL, "train", "-q"] + TRAIN +
                       ["--sar-shift", "1,-1", "opt.tif", "sar.tif",
                        "ms.mmcl"], cwd=d, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def descriptor_keeps_the_field(t, d):
    with open(os.path.join(d, "e.mmcl.json")) as f:
        j = json.load(f)
    t.assertEqual(j["sar_shift_field"], "field.tif")
    t.assertEqual(j["shift_min_confidence"], 0.3)


SHIFT_ALIGN = ["align", "-q", "opt.tif", "sar.tif", "out.tif"]
UTM30 = ('PROJCS["WGS 84 / UTM zone 30N",GEOGCS["WGS 84",DATUM["WGS_1984",'
         'SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],'
         'UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_'
         'Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_'
         'meridian",-3],PARAMETER["scale_factor",0.9996],PARAMETER["false_'
         'easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],'
         'AUTHORITY["EPSG","32630"]]')

# The SAR misregistration correction (--sar-shift, --sar-shift-field, and
# the descriptor keys sar_shift and sar_shift_field): a bad shift or a
# field that is no shift field of this optical grid is refused before any
# work, naming the file and the problem.
SHIFT_CASES = [
    Case("shift_syntax_refused", SHIFT_ALIGN + ["--sar-shift", "1.5"], 1,
         r"mmcl align: --sar-shift expects DX,DY: two numbers, in optical "
         r"pixels .*; got '1\.5'", absent=["out.tif"]),
    Case("shift_field_missing",
         SHIFT_ALIGN + ["--sar-shift-field", "nofield.tif"], 1,
         r"shift field raster 'nofield\.tif' does not exist",
         absent=["out.tif"]),
    Case("shift_field_is_another_mmcl_raster",
         SHIFT_ALIGN + ["--sar-shift-field", "al.tif"], 1,
         r"shift field 'al\.tif' is an mmcl aligned_sar raster, not a "
         r"shift field written by mmcl coreg", absent=["out.tif"]),
    Case("shift_field_not_a_coreg_raster",
         SHIFT_ALIGN + ["--sar-shift-field", "B01.tif"], 1,
         r"shift field 'B01\.tif' has no band named \"dx\": it is not a "
         r"shift field written by mmcl coreg", absent=["out.tif"]),
    Case("shift_field_off_the_grid",
         SHIFT_ALIGN + ["--sar-shift-field", "field.tif"], 1,
         r"shift field 'field\.tif' does not lie on the optical grid at "
         r"block spacing: its origin is \(500005, 4800000\)",
         setup=field("field.tif", origin_offset=(5.0, 0.0)),
         absent=["out.tif"]),
    Case("shift_field_of_another_optical_raster",
         SHIFT_ALIGN + ["--sar-shift-field", "field.tif"], 1,
         r"shift field 'field\.tif' has 4 x 4 blocks of 32 pixels, but the "
         r"optical 'opt\.tif' of 192 x 192 pixels has 6 x 6 such blocks",
         setup=both(small_optical, field("field.tif", source="small.tif")),
         absent=["out.tif"]),
    Case("shift_field_wrong_crs",
         SHIFT_ALIGN + ["--sar-shift-field", "field.tif"], 1,
         r"shift field 'field\.tif' is on another CRS \(WGS 84 / UTM zone "
         r"30N\) than the optical 'opt\.tif' \(WGS 84 / UTM zone 31N\)",
         setup=field("field.tif", srs=UTM30), absent=["out.tif"]),
    Case("shift_and_field_both_refused",
         SHIFT_ALIGN + ["--sar-shift", "1,1", "--sar-shift-field",
                        "field.tif"], 1,
         r"--sar-shift and --sar-shift-field are exclusive",
         setup=field("field.tif"), absent=["out.tif"]),
    Case("shift_field_nan_everywhere",
         SHIFT_ALIGN + ["--sar-shift-field", "field.tif"], 1,
         r"shift field 'field\.tif' has no block with an estimate of "
         r"confidence 0\.5 or more \(its 36 blocks are NaN or less "
         r"confident\)",
         setup=field("field.tif", dx=float("nan"), dy=float("nan"),
                     conf=0.0), absent=["out.tif"]),
    Case("shift_field_is_the_output",
         ["align", "-q", "--overwrite", "--sar-shift-field", "field.tif",
          "opt.tif", "sar.tif", "field.tif"], 1,
         r"output 'field\.tif' is also an input of this command",
         setup=field("field.tif")),
    Case("shift_refused_in_a_descriptor",
         ["rgb", "-q", "e.mmcl.json", "p.tif"], 1,
         r"descriptor 'e\.mmcl\.json': expected DX,DY \(two numbers, in "
         r"optical pixels, such as 1\.5,-0\.7\) for \"sar_shift\"",
         setup=embedding("e.mmcl.json", sar_shift="east"),
         absent=["p.tif"]),
    Case("shift_field_refused_in_a_descriptor",
         ["rgb", "-q", "e.mmcl.json", "p.tif"], 1,
         r"shift field '.*emb\.tif' is an mmcl embedding raster",
         setup=embedding("e.mmcl.json", sar_shift_field="emb.tif"),
         absent=["p.tif"]),
    Case("lazy_descriptor_keeps_the_shift_field",
         ["embed", "-q", "--lazy", "--sar-shift-field", "field.tif",
          "--shift-min-confidence", "0.3", "model.mmcl", "opt.tif",
          "sar.tif", "e.mmcl.json"], 0,
         setup=field("field.tif"), check=descriptor_keeps_the_field),
    Case("map_of_a_model_trained_on_a_shifted_sar_warns",
         ["embed", "ms.mmcl", "opt.tif", "sar.tif", "e.tif"], 0,
         warning=r"the model was trained on a SAR corrected for its "
         r"misregistration \(--sar-shift 1,-1\) and no correction is given "
         r"now", setup=trained_with_a_shift),
    Case("map_with_the_models_shift_does_not_warn",
         ["embed", "--sar-shift", "1,-1", "ms.mmcl", "opt.tif", "sar.tif",
          "e.tif"], 0, warning=False, setup=trained_with_a_shift),
]

COREG = ["coreg", "-q"]
NO_CONFIDENT_BLOCK = (r"coreg: no block has a confidence of at least 0\.5: "
                      r"the global shift is unknown")


def coreg_field_and_report(t, d):
    """c.tif is a shift field with its block size and c.json its report."""
    ds = gdal.Open(os.path.join(d, "c.tif"))
    t.assertEqual(ds.GetMetadataItem("MMCL_PRODUCT"), "coreg")
    t.assertEqual(ds.GetMetadataItem("MMCL_COREG_BLOCK"), "64")
    t.assertEqual((ds.RasterXSize, ds.RasterYSize, ds.RasterCount),
                  (3, 3, 5))
    with open(os.path.join(d, "c.json")) as fp:
        r = json.load(fp)
    t.assertEqual((r["format"], r["block"], r["search"]),
                  ("mmcl-coreg", 64, 4))


# mmcl coreg: refusals of its block grid and its two outputs.
COREG_CASES = [
    Case("coreg_writes_field_and_report",
         COREG + ["opt.tif", "sar.tif", "c.tif", "--report", "c.json"], 0,
         warning=NO_CONFIDENT_BLOCK, check=coreg_field_and_report),
    Case("coreg_block_larger_than_the_raster",
         COREG + ["--block", "256", "opt.tif", "sar.tif", "c.tif"], 1,
         r"mmcl coreg: --block 256 is larger than the optical 'opt\.tif' "
         r"\(192 x 192 pixels\): a block must fit in the raster; use at most "
         r"192", absent=["c.tif"]),
    Case("coreg_block_out_of_range",
         COREG + ["--block", "8", "opt.tif", "sar.tif", "c.tif"], 1,
         r"mmcl coreg: --block 8 is out of range \[16, 4096\]",
         absent=["c.tif"]),
    Case("coreg_search_out_of_range",
         COREG + ["--search", "0", "opt.tif", "sar.tif", "c.tif"], 1,
         r"mmcl coreg: --search 0 is out of range \[1, 32\]",
         absent=["c.tif"]),
    Case("coreg_search_wider_than_the_block",
         COREG + ["--block", "16", "--search", "8", "opt.tif", "sar.tif",
                  "c.tif"], 1,
         r"mmcl coreg: --search 8 does not fit in a block of 16 pixels: the "
         r"search range is at most \(block - 1\) / 2 = 7", absent=["c.tif"]),
    Case("coreg_out_exists",
         COREG + ["opt.tif", "sar.tif", "al.tif"], 1,
         r"output 'al\.tif' exists; use --overwrite to replace it"),
    Case("coreg_overwrite_not_a_shift_field",
         COREG + ["--overwrite", "opt.tif", "sar.tif", "al.tif"], 1,
         r"output 'al\.tif' is an aligned SAR written by mmcl align; "
         r"--overwrite replaces only a shift field written by mmcl coreg"),
    Case("coreg_out_is_an_input",
         COREG + ["--overwrite", "opt.tif", "sar.tif", "sar.tif"], 1,
         r"output 'sar\.tif' is also an input of this command"),
    Case("coreg_report_is_an_information_loss_report",
         COREG + ["--overwrite", "opt.tif", "sar.tif", "c.tif", "--report",
                  "report.json"], 1,
         r"report 'report\.json' is an information-loss report; --overwrite "
         r"replaces only a co-registration report \(JSON\) of mmcl coreg",
         absent=["c.tif"]),
    Case("coreg_report_is_the_output",
         COREG + ["opt.tif", "sar.tif", "c.tif", "--report", "c.tif"], 1,
         r"'c\.tif' and output 'c\.tif' are the same file", absent=["c.tif"]),
    Case("coreg_overwrite_replaces_its_outputs",
         COREG + ["--overwrite", "--block", "96", "opt.tif", "sar.tif",
                  "c.tif", "--report", "c.json"], 0,
         warning=NO_CONFIDENT_BLOCK,
         setup=mmcl_step("coreg", "opt.tif", "sar.tif", "c.tif", "--report",
                         "c.json"),
         replaced=["c.tif", "c.json"]),
    Case("coreg_no_overlap",
         COREG + ["opt.tif", "sar32.tif", "c.tif"], 1,
         r"the SAR footprint does not overlap the optical raster: no pixel "
         r"in common", absent=["c.tif"],
         setup=placed("sar.tif", "sar32.tif", "EPSG:32632",
                      [500000, 4800000, 501200, 4799120])),
]

def moved_embedding(d):
    """emb.tif 100 km east: no pixel in common with opt.tif."""
    src = gdal.Open(os.path.join(d, "emb.tif"))
    x0, dx, _, y0, _, dy = src.GetGeoTransform()
    w, h = src.RasterXSize, src.RasterYSize
    gdal.Translate(os.path.join(d, "far.tif"), src,
                   outputBounds=[x0 + 1e5, y0, x0 + 1e5 + dx * w, y0 + dy * h])


def invalid_embedding(d):
    """emb.tif with every value NaN."""
    ds = gdal.Translate(os.path.join(d, "nan.tif"),
                        gdal.Open(os.path.join(d, "emb.tif")))
    for b in range(ds.RasterCount):
        ds.GetRasterBand(b + 1).Fill(float("nan"))
    ds = None


def audit_written(t, d):
    ds = gdal.Open(os.path.join(d, "a.tif"))
    t.assertEqual(ds.GetMetadataItem("PRODUCT", "MMCL"), "audit")
    t.assertEqual(ds.GetRasterBand(1).GetDescription(), "infoloss_optical")
    style_is("a.qml", "singlebandpseudocolor")(t, d)
    with open(os.path.join(d, "a.json")) as f:
        rep = json.load(f)
    t.assertEqual(rep["product"], "audit")
    t.assertEqual(rep["embedding"]["dequantize"], "none")
    for mod in ("optical", "sar"):
        t.assertIn("r2_aligned", rep[mod]["cross_validated"])


AUDIT = ["audit", "-q", "emb.tif", "opt.tif", "sar.tif"]

# mmcl audit: an embedding raster made elsewhere, read on the optical grid.
AUDIT_CASES = [
    Case("audit_writes_map_report_and_style",
         AUDIT + ["a.tif", "--report", "a.json"], 0, check=audit_written),
    Case("audit_embedding_not_a_raster",
         ["audit", "-q", "notes.txt", "opt.tif", "sar.tif", "a.tif"], 1,
         r"cannot open embedding raster 'notes\.txt': .*not recognized",
         setup=write("notes.txt", "my notes\n"), absent=["a.tif"]),
    Case("audit_embedding_does_not_overlap",
         ["audit", "-q", "far.tif", "opt.tif", "sar.tif", "a.tif"], 1,
         r"the embedding raster 'far\.tif' does not overlap the optical "
         r"raster: no pixel in common", setup=moved_embedding,
         absent=["a.tif"]),
    Case("audit_embedding_without_valid_value",
         ["audit", "-q", "nan.tif", "opt.tif", "sar.tif", "a.tif"], 1,
         r"the embedding raster 'nan\.tif' has no valid value where the "
         r"optical and the SAR are valid", setup=invalid_embedding,
         absent=["a.tif"]),
    Case("audit_bad_dequantize_refused_naming_the_flag",
         ["audit", "-q", "--dequantize", "sqrt", "emb.tif", "opt.tif",
          "sar.tif", "a.tif"], 1,
         r"mmcl audit: --dequantize must be one of "
         r"auto\|none\|linear\|alphaearth, got 'sqrt'", absent=["a.tif"]),
    Case("audit_out_exists_refused",
         AUDIT + ["loss.tif"], 1,
         r"output 'loss\.tif' exists; use --overwrite to replace it"),
    Case("audit_overwrite_not_an_audit_map",
         AUDIT + ["--overwrite", "loss.tif"], 1,
         r"output 'loss\.tif' is an information-loss map written by mmcl "
         r"infoloss; --overwrite replaces only an information-loss map "
         r"written by mmcl audit"),
    Case("audit_overwrite_not_an_audit_report",
         AUDIT + ["--overwrite", "a.tif", "--report", "report.json"], 1,
         r"report 'report\.json' is an information-loss report; --overwrite "
         r"replaces only an audit report \(JSON\) written by mmcl audit",
         absent=["a.tif"]),
    Case("audit_out_is_the_embedding",
         AUDIT + ["--overwrite", "emb.tif"], 1,
         r"output 'emb\.tif' is also an input of this command"),
    Case("audit_out_is_the_optical",
         AUDIT + ["--overwrite", "opt.tif"], 1,
         r"output 'opt\.tif' is also an input of this command"),
    Case("audit_report_is_the_embedding",
         AUDIT + ["a.tif", "--report", "emb.tif"], 1,
         r"report 'emb\.tif' is also an input of this command",
         absent=["a.tif"]),
]

def same_as_without_resume(out, args):
    """@p out equals what the same command writes without --resume, and no
    journal is left beside it."""
    def check(t, d):
        t.assertFalse(os.path.exists(os.path.join(d, out + ".mmcl-journal")),
                      "journal left beside %s" % out)
        ref = "ref-" + out
        p = subprocess.run([MMCL] + [ref if a == out else a for a in args],
                           cwd=d, capture_output=True, text=True)
        t.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(d, out), "rb") as f, \
                open(os.path.join(d, ref), "rb") as g:
            t.assertEqual(f.read(), g.read(),
                          "--resume wrote other bytes than a plain run")
    return check


# A journal beside the output that another job wrote (docs/mpi.md).
FOREIGN_JOURNAL = "MMCLJRN1\x05\0\0\0\0\0\0\0other"

MPI_EMBED = ["embed", "-q", "--tile", "48", "model.mmcl", "opt.tif",
             "sar.tif", "r.tif"]
MPI_CASES = [
    Case("resume_writes_the_plain_bytes_and_no_journal",
         MPI_EMBED[:1] + ["--resume"] + MPI_EMBED[1:], 0,
         check=same_as_without_resume("r.tif", MPI_EMBED)),
    Case("resume_journal_of_another_job_refused",
         MPI_EMBED[:1] + ["--resume"] + MPI_EMBED[1:], 1,
         r"the journal 'r\.tif\.mmcl-journal' is not one of this job "
         r"\(another command, inputs, options or mmcl version wrote it\): "
         r"remove it to start again from the first tile",
         setup=write("r.tif.mmcl-journal", FOREIGN_JOURNAL),
         absent=["r.tif"]),
    Case("align_resume_journal_of_another_job_refused",
         ["align", "-q", "--resume", "opt.tif", "sar.tif", "a2.tif"], 1,
         r"the journal 'a2\.tif\.mmcl-journal' is not one of this job",
         setup=write("a2.tif.mmcl-journal", FOREIGN_JOURNAL),
         absent=["a2.tif"]),
]


def shift_wheel_picture(t, d):
    pic = gdal.Open(os.path.join(d, "w.png"))
    t.assertEqual(pic.RasterCount, 4)
    md = pic.GetMetadata("MMCL")
    t.assertEqual((md["SOURCE_PRODUCT"], md["MODE"]), ("coreg", "shift_wheel"))
    with open(os.path.join(d, "w.legend.json")) as f:
        t.assertAlmostEqual(json.load(f)["range"], float(md["SHIFT_RANGE"]),
                            places=4)


# The picture of a shift field (mmcl rgb of an mmcl coreg raster): the
# options of the other pictures are refused, naming the field, rather
# than silently ignored.
SHIFT_FIELD_IS = (r"'sf\.tif' is a shift field \(mmcl coreg\): it is drawn "
                  r"as a colour wheel of dx, dy and confidence, without ")
COREGRGB_CASES = [
    Case("rgb_shift_field_draws_a_wheel",
         ["rgb", "-q", "sf.tif", "w.png"], 0, setup=field("sf.tif"),
         check=shift_wheel_picture),
    Case("rgb_shift_field_range_not_from_zero",
         ["rgb", "-q", "--range", "1,3", "sf.tif", "w.png"], 1,
         r"'sf\.tif' is a shift field \(mmcl coreg\): --range must be 0,MAX, "
         r"MAX the shift in optical pixels drawn in full colour, got '1,3'",
         setup=field("sf.tif"),
         absent=["w.png", "w.legend.png", "w.legend.json"]),
    Case("rgb_shift_field_bands_refused",
         ["rgb", "-q", "--bands", "1", "sf.tif", "w.png"], 1,
         SHIFT_FIELD_IS + "--bands", setup=field("sf.tif"),
         absent=["w.png", "w.legend.png"]),
    Case("rgb_shift_field_mode_refused",
         ["rgb", "-q", "--mode", "colormap", "sf.tif", "w.png"], 1,
         SHIFT_FIELD_IS + "--mode colormap", setup=field("sf.tif"),
         absent=["w.png", "w.legend.png"]),
    Case("rgb_shift_field_lazy_refused",
         ["rgb", "-q", "--lazy", "sf.tif", "w.mmcl.json"], 1,
         SHIFT_FIELD_IS + "--lazy", setup=field("sf.tif"),
         absent=["w.mmcl.json", "w.legend.png"]),
    Case("rgb_shift_field_inset_refused",
         ["rgb", "-q", "--legend-inset", "sf.tif", "w.png"], 1,
         SHIFT_FIELD_IS + "--legend-inset", setup=field("sf.tif"),
         absent=["w.png", "w.legend.png"]),
]

def residual_field(name, correction="1.5,-0.5"):
    """A shift field mmcl coreg measured on a SAR corrected with
    --sar-shift @p correction (its MMCL metadata SAR_SHIFT)."""
    def f(d):
        field(name)(d)
        ds = gdal.Open(os.path.join(d, name), gdal.GA_Update)
        ds.SetMetadataItem("SAR_SHIFT", correction, "MMCL")
        ds = None
    return f


def coreg_records_the_correction(t, d):
    ds = gdal.Open(os.path.join(d, "c.tif"))
    t.assertEqual(ds.GetMetadataItem("SAR_SHIFT", "MMCL"), "1,-1")
    with open(os.path.join(d, "c.json")) as fp:
        r = json.load(fp)
    t.assertEqual(r["correction"]["sar_shift"], "1,-1")
    t.assertTrue(r["shift"]["residual"])


def audit_descriptor_keeps_the_field(t, d):
    with open(os.path.join(d, "a.mmcl.json")) as f:
        j = json.load(f)
    t.assertEqual(j["sar_shift_field"], "field.tif")


def wheel_over_the_optical(t, d):
    pic = gdal.Open(os.path.join(d, "w.png"))
    opt = gdal.Open(os.path.join(d, "opt.tif"))
    t.assertEqual((pic.RasterXSize, pic.RasterYSize),
                  (opt.RasterXSize, opt.RasterYSize))
    md = pic.GetMetadata("MMCL")
    t.assertEqual((md["SOURCE_PRODUCT"], md["MODE"], md["OVER"]),
                  ("coreg", "shift_wheel", "opt.tif"))
    with open(os.path.join(d, "w.legend.json")) as f:
        t.assertEqual(json.load(f)["over"], "opt.tif")


# The correction given to coreg (the field it measures is then the
# residual) and to audit, and the wheel over the optical picture (rgb
# --over): misuse is refused before any work, naming the file and the
# problem.
COREGSCI_CASES = [
    Case("coreg_with_a_correction_records_it",
         COREG + ["--sar-shift", "1,-1", "opt.tif", "sar.tif", "c.tif",
                  "--report", "c.json"], 0,
         check=coreg_records_the_correction),
    Case("coreg_shift_syntax_refused",
         COREG + ["--sar-shift", "1.5", "opt.tif", "sar.tif", "c.tif"], 1,
         r"mmcl coreg: --sar-shift expects DX,DY: two numbers, in optical "
         r"pixels .*; got '1\.5'", absent=["c.tif"]),
    Case("coreg_shift_and_field_both_refused",
         COREG + ["--sar-shift", "1,1", "--sar-shift-field", "field.tif",
                  "opt.tif", "sar.tif", "c.tif"], 1,
         r"--sar-shift and --sar-shift-field are exclusive",
         setup=field("field.tif"), absent=["c.tif"]),
    Case("coreg_output_is_its_correction_field",
         COREG + ["--overwrite", "--sar-shift-field", "field.tif", "opt.tif",
                  "sar.tif", "field.tif"], 1,
         r"output 'field\.tif' is also an input of this command",
         setup=field("field.tif")),
    Case("coreg_correction_field_off_the_grid",
         COREG + ["--sar-shift-field", "field.tif", "opt.tif", "sar.tif",
                  "c.tif"], 1,
         r"shift field 'field\.tif' does not lie on the optical grid at "
         r"block spacing", setup=field("field.tif", origin_offset=(5.0, 0.0)),
         absent=["c.tif"]),
    Case("residual_field_refused_as_a_correction",
         SHIFT_ALIGN + ["--sar-shift-field", "res.tif"], 1,
         r"shift field 'res\.tif' is a residual: mmcl coreg measured it on "
         r"the SAR corrected with --sar-shift 1\.5,-0\.5, so it holds what "
         r"remains of the shift after that correction, not the SAR's shift",
         setup=residual_field("res.tif"), absent=["out.tif"]),
    Case("audit_shift_syntax_refused",
         AUDIT + ["--sar-shift", "east", "a.tif"], 1,
         r"mmcl audit: --sar-shift expects DX,DY: two numbers, in optical "
         r"pixels .*; got 'east'", absent=["a.tif"]),
    Case("audit_shift_field_of_another_optical_raster",
         AUDIT + ["--sar-shift-field", "field.tif", "a.tif"], 1,
         r"shift field 'field\.tif' has 4 x 4 blocks of 32 pixels, but the "
         r"optical 'opt\.tif' of 192 x 192 pixels has 6 x 6 such blocks",
         setup=both(small_optical, field("field.tif", source="small.tif")),
         absent=["a.tif"]),
    Case("audit_output_is_its_correction_field",
         AUDIT + ["--overwrite", "--sar-shift-field", "field.tif",
                  "field.tif"], 1,
         r"output 'field\.tif' is also an input of this command",
         setup=field("field.tif")),
    Case("audit_lazy_keeps_the_shift_field",
         AUDIT_LAZY + ["--sar-shift-field", "field.tif", "a.mmcl.json"], 0,
         setup=field("field.tif"), check=audit_descriptor_keeps_the_field),
    Case("rgb_over_draws_the_wheel_over_the_optical",
         ["rgb", "-q", "--over", "opt.tif", "sf.tif", "w.png"], 0,
         setup=field("sf.tif"), check=wheel_over_the_optical),
    Case("rgb_over_of_a_raster_that_is_no_shift_field",
         ["rgb", "-q", "--over", "opt.tif", "emb.tif", "w.png"], 1,
         r"mmcl rgb: --over draws a shift field \(mmcl coreg\) over an "
         r"optical raster, but 'emb\.tif' is not a shift field \(it is an "
         r"mmcl embedding raster\)", absent=["w.png", "w.legend.png"]),
    Case("rgb_over_raster_not_on_the_field_grid",
         ["rgb", "-q", "--over", "small.tif", "sf.tif", "w.png"], 1,
         r"shift field 'sf\.tif' has 6 x 6 blocks of 32 pixels, but the "
         r"optical 'small\.tif' of 100 x 100 pixels has 4 x 4 such blocks",
         setup=both(small_optical, field("sf.tif")),
         absent=["w.png", "w.legend.png", "w.legend.json"]),
    Case("rgb_over_raster_on_another_crs",
         ["rgb", "-q", "--over", "o30.tif", "sf.tif", "w.png"], 1,
         r"shift field 'sf\.tif' is on another CRS \(WGS 84 / UTM zone "
         r"31N\) than the optical 'o30\.tif' \(WGS 84 / UTM zone 30N\)",
         setup=both(field("sf.tif"),
                    lambda d: gdal.Translate(os.path.join(d, "o30.tif"),
                                             os.path.join(d, "opt.tif"),
                                             outputSRS=UTM30)),
         absent=["w.png", "w.legend.png"]),
    Case("rgb_over_missing",
         ["rgb", "-q", "--over", "none.tif", "sf.tif", "w.png"], 1,
         r"'none\.tif' does not exist", setup=field("sf.tif"),
         absent=["w.png", "w.legend.png"]),
    Case("rgb_over_is_the_output",
         ["rgb", "-q", "--overwrite", "--over", "pic.tif", "sf.tif",
          "pic.tif"], 1,
         r"output 'pic\.tif' is also an input of this command",
         setup=field("sf.tif")),
    Case("rgb_over_lazy_refused",
         ["rgb", "-q", "--lazy", "--over", "opt.tif", "sf.tif",
          "w.mmcl.json"], 1,
         SHIFT_FIELD_IS + "--lazy", setup=field("sf.tif"),
         absent=["w.mmcl.json", "w.legend.png"]),
]

TABLE = (OUTPUTS + DESCRIPTORS + INPUTS + MODEL_CHECKS + MODEL_WARNINGS +
         PROBE_CASES + EDGE_CASES + STYLE_CASES + PRECISION_CASES +
         SHIFT_CASES + COREG_CASES + AUDIT_CASES + PROBE_EMB_CASES +
         MPI_CASES + COREGRGB_CASES + COREGSCI_CASES)


def snapshot(folder, but_temporary=False):
    """Every entry under @p folder: a file's SHA-256, a link's target, a
    folder or a special file's type (without mmcl's temporary folders when
    @p but_temporary: a run is under way)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        if but_temporary:
            dirs[:] = [n for n in dirs if "mmcl-tmp" not in n]
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, folder)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "link:" + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    out[rel] = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "folder"
            else:
                out[rel] = "special:%o" % stat.S_IFMT(st.st_mode)
    return out


class Fixture(unittest.TestCase):
    """The files every case starts from, made once."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="mmcl-trust-")
        cls.base = os.path.join(cls.root, "base")
        os.mkdir(cls.base)
        b = cls.base
        shutil.copyfile(os.path.join(SAMPLE, "optical.tif"),
                        os.path.join(b, "opt.tif"))
        shutil.copyfile(os.path.join(SAMPLE, "sar.tif"),
                        os.path.join(b, "sar.tif"))
        opt = gdal.Open(os.path.join(b, "opt.tif"))
        for k in (1, 2, 3):
            gdal.Translate(os.path.join(b, "B%02d.tif" % k), opt,
                           bandList=[k])
        opt = None
        steps = [
            ["train", "-q"] + TRAIN + ["opt.tif", "sar.tif", "model.mmcl"],
            ["embed", "-q", "model.mmcl", "opt.tif", "sar.tif", "emb.tif"],
            ["infoloss", "-q", "model.mmcl", "opt.tif", "sar.tif",
             "loss.tif", "--report", "report.json"],
            ["embed", "-q", "--lazy", "model.mmcl", "opt.tif", "sar.tif",
             "emb.mmcl.json"],
            ["align", "-q", "opt.tif", "sar.tif", "al.tif"],
            ["align", "-q", "-of", "COG", "opt.tif", "sar.tif", "cog.tif"],
            ["rgb", "-q", "emb.tif", "pic.tif"],
        ]
        for s in steps:
            p = subprocess.run([MMCL] + s, cwd=b, capture_output=True,
                               text=True)
            if p.returncode != 0:
                raise RuntimeError("fixture: mmcl %s: %s" % (s, p.stderr))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def fresh(self, name):
        """A copy of the base files in a folder of its own, and an empty
        TMPDIR beside it."""
        d = os.path.join(self.root, name)
        shutil.copytree(self.base, d, symlinks=True)
        tmp = os.path.join(self.root, name + ".tmpdir")
        os.mkdir(tmp)
        return d, tmp

    def env(self, tmp, extra=None):
        e = dict(os.environ)
        e["TMPDIR"] = tmp
        e.update(extra or {})
        return e

    def mmcl(self, args, cwd, tmp, extra_env=None, **kw):
        return subprocess.run([MMCL] + [str(a) for a in args], cwd=cwd,
                              env=self.env(tmp, extra_env),
                              capture_output=True, text=True, timeout=300,
                              **kw)

    def assert_clean(self, folder, tmp):
        """No temporary file left, in the folder and in TMPDIR."""
        left = [rel for rel in snapshot(folder) if "mmcl-tmp" in rel]
        self.assertEqual(left, [], "temporary files left")
        self.assertEqual(os.listdir(tmp), [], "files left in TMPDIR")

    def assert_unchanged(self, before, after, allowed=()):
        for rel, h in before.items():
            if rel in allowed:
                continue
            self.assertIn(rel, after, "%s was removed" % rel)
            self.assertEqual(after[rel], h, "%s was changed" % rel)


class Table(Fixture):
    def test_table(self):
        for case in TABLE:
            with self.subTest(case=case.name):
                self.run_case(case)

    def run_case(self, case):
        d, tmp = self.fresh(case.name)
        if case.setup:
            case.setup(d)
        before = snapshot(d)
        p = self.mmcl(case.args, d, tmp, extra_env=case.env)
        print("%-44s exit %d  %s" % (case.name, p.returncode,
                                     p.stderr.strip().splitlines()[-1]
                                     if p.stderr.strip() else ""))
        self.assertEqual(p.returncode, case.rc, p.stderr)
        if case.message:
            self.assertRegex(p.stderr, case.message)
            self.assertRegex(p.stderr, r"^ERROR \d+: mmcl ")
        if case.warning:
            self.assertRegex(p.stderr, r"(?m)^Warning: " + case.warning)
        elif case.warning is False:
            self.assertNotRegex(p.stderr, r"(?m)^Warning: ")
        after = snapshot(d)
        self.assert_unchanged(before, after,
                              set(case.replaced) | set(case.removed))
        for rel in case.removed:
            self.assertNotIn(rel, after)
        for rel in case.replaced:
            self.assertNotEqual(after.get(rel), before.get(rel),
                                "%s was not replaced" % rel)
        for rel in case.absent:
            self.assertNotIn(rel, after)
        if case.rc != 0:  # a refusal writes nothing at all
            self.assertEqual(sorted(after), sorted(before))
        self.assert_clean(d, tmp)
        if case.check:
            case.check(self, d)


def wait_for(proc, needle):
    """Reads the progress bar on @p proc's stdout until @p needle shows;
    returns what was read."""
    seen = b""
    while needle not in seen:
        c = proc.stdout.read(1)
        if not c:
            raise AssertionError("mmcl ended before %r: %r" % (needle, seen))
        seen += c
    return seen


def stop(proc):
    """SIGSTOP, and wait until every thread is stopped."""
    proc.send_signal(signal.SIGSTOP)
    for _ in range(2000):
        with open("/proc/%d/stat" % proc.pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.001)
    raise AssertionError("mmcl did not stop")


def proc_cont(proc):
    proc.send_signal(signal.SIGCONT)


def mount_tmpfs(folder, options):
    """Mounts a tmpfs on @p folder; False when this process may not."""
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs",
                        folder], capture_output=True)
    return p.returncode == 0


class Special(Fixture):
    """The cases that need process control or a special file system."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A scene big enough that a run lasts a second or two.
        big = os.path.join(cls.root, "big")
        for s in (["synth", "-q", "--size", "1024", "--seed", "3", big],
                  ["train", "-q"] + TRAIN + [
                      os.path.join(big, "optical.tif"),
                      os.path.join(big, "sar.tif"),
                      os.path.join(big, "m.mmcl")]):
            p = subprocess.run([MMCL] + s, capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError("fixture: %s" % p.stderr)
        cls.big = [os.path.join(big, n)
                   for n in ("m.mmcl", "optical.tif", "sar.tif")]

    def popen(self, args, cwd, tmp):
        return subprocess.Popen([MMCL] + [str(a) for a in args], cwd=cwd,
                                env=self.env(tmp), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def embed_args(self, out, *extra):
        return ["embed", "--threads", "1", *extra] + self.big + [out]

    def test_out_appears_while_mmcl_runs(self):
        d, tmp = self.fresh("appeared")
        out = os.path.join(d, "e.tif")
        p = self.popen(self.embed_args(out), d, tmp)
        wait_for(p, b"0")  # the output was checked: it did not exist
        stop(p)
        with open(out, "w") as f:
            f.write("written by another program")
        before = snapshot(d, but_temporary=True)
        proc_cont(p)
        _, err = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 1, err)
        self.assertIn(b"output '%s' appeared while mmcl was running; nothing "
                      b"was replaced (use --overwrite)" % out.encode(), err)
        self.assertEqual(snapshot(d), before)
        self.assert_clean(d, tmp)

    def test_two_runs_write_one_out(self):
        d, tmp = self.fresh("two_runs")
        out = os.path.join(d, "e.tif")
        first = self.popen(self.embed_args(out), d, tmp)
        wait_for(first, b"0")
        stop(first)
        second = self.mmcl(self.embed_args(out, "-q"), d, tmp)
        self.assertEqual(second.returncode, 0, second.stderr)
        before = snapshot(d, but_temporary=True)
        proc_cont(first)
        _, err = first.communicate(timeout=300)
        self.assertEqual(first.returncode, 1, err)
        self.assertIn(b"appeared while mmcl was running; nothing was "
                      b"replaced", err)
        self.assertEqual(snapshot(d), before)  # the second run's file
        self.assert_clean(d, tmp)

    def test_sigterm_during_the_cog_copy_leaves_nothing(self):
        d, tmp = self.fresh("sigterm_cog")
        out = os.path.join(d, "e.tif")
        before = snapshot(d)
        p = self.popen(self.embed_args(out, "-of", "COG"), d, tmp)
        wait_for(p, b"90")  # the tiles are done; the copy runs
        stop(p)
        p.send_signal(signal.SIGTERM)
        proc_cont(p)
        _, err = p.communicate(timeout=300)
        self.assertEqual(p.returncode, -signal.SIGTERM, err)
        self.assertIn(b"interrupted by SIGTERM; nothing was written", err)
        self.assertEqual(snapshot(d), before)
        self.assert_clean(d, tmp)

    def test_sigterm_after_the_commit_reports_success(self):
        hits = 0
        for attempt in range(3):
            d, tmp = self.fresh("sigterm_late_%d" % attempt)
            out = os.path.join(d, "e.tif")
            p = self.popen(self.embed_args(out, "-q"), d, tmp)
            while not os.path.exists(out) and p.poll() is None:
                pass
            if p.poll() is None:
                p.send_signal(signal.SIGSTOP)
                p.send_signal(signal.SIGTERM)
                p.send_signal(signal.SIGCONT)
                hits += 1
            _, err = p.communicate(timeout=300)
            # Once the output is in place a signal changes nothing: success.
            self.assertEqual(p.returncode, 0, err)
            ds = gdal.Open(out)
            self.assertEqual(ds.GetMetadataItem("PRODUCT", "MMCL"),
                             "embedding")
            ds.GetRasterBand(ds.RasterCount).Checksum()  # reads every block
            ds = None
            self.assert_clean(d, tmp)
        print("signal delivered after the commit in %d of 3 runs" % hits)

    def planted(self, name, args, names, tmp_names=(), pre=None):
        """Plants links to a victim file at the formerly predictable
        temporary names (with the pid of the mmcl about to run: the shell
        execs it), runs, and checks the victim and the links."""
        d, tmp = self.fresh("planted_" + name)
        if pre:
            pre(d)
        victim = os.path.join(self.root, "victim_" + name)
        with open(victim, "w") as f:
            f.write("not to be touched\n")
        links = [os.path.join(d, n) for n in names] + \
                [os.path.join(tmp, n) for n in tmp_names]
        script = "; ".join('ln -s "$V" "%s"' % l.replace("PID", "$$")
                           for l in links)
        env = self.env(tmp)
        env["V"] = victim
        p = subprocess.run(["sh", "-c", script + '; exec "$@"', "sh", MMCL] +
                           [str(a) for a in args], cwd=d, env=env,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(victim) as f:
            self.assertEqual(f.read(), "not to be touched\n")
        # Every link is still there, to the victim; then they go.
        found = []
        for folder in (d, tmp):
            for root, _, files in os.walk(folder):
                for n in files:
                    q = os.path.join(root, n)
                    if os.path.islink(q):
                        self.assertEqual(os.readlink(q), victim)
                        found.append(q)
        self.assertEqual(len(found), len(links), found)
        for q in found:
            os.remove(q)
        self.assert_clean(d, tmp)

    def test_planted_links_align_cog_sar_db(self):
        names = ["o.mmcl-tmp-PID-%d.tif" % n for n in range(1, 5)]
        self.planted("align", ["align", "-q", "-of", "COG", "--sar-db",
                               "--speckle", "lee:3", "opt.tif", "sar.tif",
                               "o.tif"], names,
                     ["mmcl-sar-PID-%d.tif" % k for k in range(1, 3)])

    def test_planted_links_train(self):
        self.planted("train", ["train", "-q"] + TRAIN +
                     ["opt.tif", "sar.tif", "m2.mmcl"], ["m2.mmcl.tmp-PID"])

    def test_planted_links_infoloss_report(self):
        self.planted("infoloss", ["infoloss", "-q", "model.mmcl", "opt.tif",
                                  "sar.tif", "l.tif", "--report", "r.json"],
                     ["l.mmcl-tmp-PID-1.tif", "r.json.mmcl-tmp"])

    def test_planted_links_embed_lazy(self):
        self.planted("lazy", ["embed", "-q", "--lazy", "model.mmcl",
                              "opt.tif", "sar.tif", "e.mmcl.json"],
                     ["e.mmcl.json.mmcl-tmp"])

    def test_planted_links_rgb_legend_and_lazy(self):
        names = ["p.mmcl-tmp-PID-%d.png" % n for n in range(1, 3)] + \
                ["p.mmcl-tmp-PID-%d.tif" % n for n in range(1, 3)] + \
                ["p.legend.png.mmcl-tmp-PID.png",
                 "p.legend.json.mmcl-tmp-PID"]
        self.planted("rgb", ["rgb", "-q", "-of", "PNG", "loss.tif", "p.png"],
                     names)
        self.planted("rgb_lazy", ["rgb", "-q", "--lazy", "loss.tif",
                                  "q.mmcl.json"],
                     ["q.mmcl.json.mmcl-tmp",
                      "q.legend.png.mmcl-tmp-PID.png",
                      "q.legend.json.mmcl-tmp-PID"])

    def test_planted_links_synth(self):
        names = ["s/%s.mmcl-tmp-PID-%d.tif" % (b, n)
                 for b in ("optical", "sar", "labels", "truth")
                 for n in range(1, 5)] + \
                ["s/sar.mmcl-tmp-grid-PID.tif", "s/synth.json.mmcl-tmp-PID"]
        self.planted("synth", ["synth", "-q", "--size", "64", "--sar-srs",
                               "EPSG:4326", "--sar-res", "0.0002", "s"],
                     names, pre=lambda d: os.mkdir(os.path.join(d, "s")))

    def test_kill_9_leaves_no_sar_temporary(self):
        d, tmp = self.fresh("kill9")
        out = os.path.join(d, "e.tif")
        p = self.popen(["align", "--threads", "1", "--sar-db", "--speckle",
                        "lee:5", self.big[1], self.big[2], out], d, tmp)
        wait_for(p, b"0")  # the SAR was preprocessed, the tiles run
        stop(p)
        self.assertEqual(os.listdir(tmp), [],
                         "the preprocessed SAR has a name on disk")
        p.kill()
        p.communicate(timeout=60)
        self.assertEqual(os.listdir(tmp), [])
        # Only the output's private folder is left, named with the pid
        # (what the QGIS runner removes after a kill).
        left = [n for n in os.listdir(d) if "mmcl-tmp" in n]
        self.assertEqual(len(left), 1, left)
        self.assertRegex(left[0], r"^e\.tif\.mmcl-tmp-%d-\w{6}$" % p.pid)
        self.assertFalse(os.path.exists(out))

    def test_out_in_a_read_only_folder(self):
        d, tmp = self.fresh("read_only")
        ro = os.path.join(d, "ro")
        os.mkdir(ro)
        if os.geteuid() == 0:
            if not mount_tmpfs(ro, "ro,size=64k"):
                self.skipTest("root without mount: a read-only folder "
                              "cannot be made")
        else:
            os.chmod(ro, 0o555)
        try:
            before = snapshot(d)
            p = self.mmcl(ALIGN + ["opt.tif", "sar.tif", "ro/al.tif"], d, tmp)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertRegex(p.stderr, r"cannot write output 'ro/al\.tif': "
                             r"cannot create a file in the folder 'ro': "
                             r"(Read-only file system|Permission denied)")
            self.assertEqual(snapshot(d), before)
            self.assert_clean(d, tmp)
        finally:
            if os.geteuid() == 0:
                subprocess.run(["umount", ro])

    def test_disk_full(self):
        d, tmp = self.fresh("disk_full")
        small = os.path.join(d, "small")
        os.mkdir(small)
        if not mount_tmpfs(small, "size=64k"):
            self.skipTest("a small tmpfs cannot be mounted here")
        try:
            before = snapshot(d)
            p = self.mmcl(ALIGN + ["-co", "COMPRESS=NONE", "opt.tif",
                                   "sar.tif", "small/al.tif"], d, tmp)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("the disk holding 'small' is full", p.stderr)
            self.assertEqual(os.listdir(small), [])
            self.assertEqual(snapshot(d), before)
            self.assert_clean(d, tmp)
        finally:
            subprocess.run(["umount", small])

    def test_file_size_limit(self):
        d, tmp = self.fresh("file_size_limit")
        before = snapshot(d)

        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (100000, 100000))
        for args in (ALIGN + ["-co", "COMPRESS=NONE", "opt.tif", "sar.tif",
                              "al2.tif"],
                     ALIGN + ["-of", "COG", "-co", "COMPRESS=NONE",
                              "opt.tif", "sar.tif", "al3.tif"]):
            p = self.mmcl(args, d, tmp, preexec_fn=limit)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("the file size limit (ulimit -f) of 100000 bytes "
                          "was reached", p.stderr)
            self.assertEqual(snapshot(d), before)
            self.assert_clean(d, tmp)


class Descriptors(Fixture):
    """Descriptor cases that need more than one command."""

    def test_vsicurl_makes_no_request_unless_allowed(self):
        import http.server
        import threading
        requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):
                requests.append(self.path)
                self.send_error(404)

            do_GET = do_HEAD

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = "/vsicurl/http://127.0.0.1:%d/x.tif" % server.server_port
            d, tmp = self.fresh("vsicurl_makes_no_request_unless_allowed")
            embedding("net.mmcl.json", optical=url)(d)
            before = snapshot(d)
            p = self.mmcl(["rgb", "-q", "net.mmcl.json", "out.tif"], d, tmp)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("\"optical\" '%s' is a network path" % url,
                          p.stderr)
            self.assertEqual(requests, [], "a request was made")
            p = self.mmcl(["rgb", "-q"] + ALLOW + ["net.mmcl.json",
                                                   "out.tif"], d, tmp)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertNotIn(REFUSED, p.stderr)
            self.assertIn("cannot open optical raster '%s'" % url, p.stderr)
            self.assertIn("/x.tif", requests)  # GDAL asked, got a 404
            self.assertEqual(snapshot(d), before)
            self.assert_clean(d, tmp)
        finally:
            server.shutdown()
            server.server_close()


class Readme(unittest.TestCase):
    def test_readme_lists_every_case(self):
        with open(os.path.join(HERE, "..", "README-trust.md")) as f:
            listed = re.findall(r"^\| `([a-z0-9_]+)` \|", f.read(), re.M)
        cases = [c.name for c in TABLE]
        for cls in Fixture.__subclasses__():
            if cls is not Table:
                cases += [n[5:] for n in dir(cls) if n.startswith("test_")]
        self.assertEqual(sorted(listed), sorted(cases))
        self.assertEqual(len(listed), len(set(listed)))


if __name__ == "__main__":
    unittest.main()
