# SPDX-License-Identifier: MIT
"""mmcl under MPI (docs/mpi.md), with Open MPI's mpirun on this machine
(--oversubscribe: more ranks than cores).

What a user relies on: embed, infoloss and align started on 1, 2, 3 or 4
ranks write the same bytes as the program run once without mpirun, for
tile sizes that do and do not divide the raster; a rank that fails or is
killed ends the job non-zero with no output in place; --resume then
completes the job, and its output equals an uninterrupted run; a command
that does not share its work, or a launch MPI does not see, is refused
with a message.

Run by CTest only when mmcl was built with MPI ($MPIEXEC is then mpirun).
"""
import atexit
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmcl_cli import MMCL, run  # noqa: E402

TMP = tempfile.mkdtemp(prefix="mmcl-mpi-")
atexit.register(shutil.rmtree, TMP, True)


def tmpdir(name):
    """A new scratch folder, removed when the tests end."""
    d = os.path.join(TMP, name)
    os.mkdir(d)
    return d

MPIEXEC = os.environ.get("MPIEXEC", shutil.which("mpirun") or "mpirun")
# CI runs as root, which Open MPI refuses unless told.
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
           OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1")


def mpirun(n, *args, wait=True):
    cmd = [MPIEXEC, "--oversubscribe", "-n", str(n), MMCL] + \
        [str(a) for a in args]
    if not wait:
        return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True)


def damaged_copy(src, dst):
    """Writes a copy of the raster @p src to @p dst with a tenth of its
    bytes, from 60 % on, zeroed (tiles that cannot be read); returns the
    copy's bytes."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    n = len(data)
    data[int(n * 0.6):int(n * 0.6) + n // 10] = bytes(n // 10)
    with open(dst, "wb") as f:
        f.write(data)
    return bytes(data)


def one_message(t, stderr, command):
    """The one line of stderr about `mmcl COMMAND` (asserted to be one)."""
    mine = [l for l in stderr.splitlines() if "mmcl " + command in l]
    t.assertEqual(len(mine), 1, "not one message: %s" % stderr)
    return mine[0]


def same_bytes(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


class Scene:
    """A small synthetic scene and a model, made once."""
    folder = None

    @classmethod
    def get(cls):
        if cls.folder is None:
            cls.folder = tmpdir("mpi_scene")
            run("synth", "-q", "--size", "160", os.path.join(cls.folder, "s"))
            run("train", "-q", os.path.join(cls.folder, "s", "optical.tif"),
                os.path.join(cls.folder, "s", "sar.tif"),
                os.path.join(cls.folder, "m.mmcl"))
        f = cls.folder
        return (os.path.join(f, "m.mmcl"), os.path.join(f, "s", "optical.tif"),
                os.path.join(f, "s", "sar.tif"))


def command(op, out, tile, model, opt, sar):
    """The arguments of @p op writing @p out (infoloss: with its report)."""
    if op == "align":
        return ["align", "-q", "--tile", tile, opt, sar, out]
    args = [op, "-q", "--tile", tile]
    if op == "infoloss":
        args += ["--report", out + ".json"]
    return args + [model, opt, sar, out]


class TestSameBytes(unittest.TestCase):
    """1, 2, 3 and 4 ranks write the serial program's bytes. The serial
    reference runs one thread: it compresses the blocks and computes the
    statistics on one thread, where rank 0 of a shared job uses GDAL's
    compression threads and computes the bands' statistics in threads."""

    def check(self, op):
        model, opt, sar = Scene.get()
        d = tmpdir("mpi_same_" + op)
        for tile in (48, 128):  # 48 leaves partial tiles at the edges
            ref = os.path.join(d, "ref%d.tif" % tile)
            run(*command(op, ref, tile, model, opt, sar), "--threads", "1")
            for n in (1, 2, 3, 4):
                out = os.path.join(d, "n%d_t%d.tif" % (n, tile))
                p = mpirun(n, *command(op, out, tile, model, opt, sar))
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertTrue(same_bytes(ref, out),
                                "%s, %d ranks, tile %d: not the serial "
                                "bytes" % (op, n, tile))
                if op == "infoloss":
                    self.assertTrue(same_bytes(ref + ".json", out + ".json"),
                                    "infoloss report, %d ranks" % n)

    def test_embed(self):
        self.check("embed")

    def test_infoloss(self):
        self.check("infoloss")

    def test_align(self):
        self.check("align")

    def test_serial_threads(self):
        # One process: 3 threads compress in 2 of GDAL's threads and
        # compute the statistics in 3; the bytes of one thread.
        model, opt, sar = Scene.get()
        d = tmpdir("mpi_serial_threads")
        for op in ("embed", "infoloss"):
            out = [os.path.join(d, "%s_t%s.tif" % (op, n)) for n in "13"]
            for f, n in zip(out, "13"):
                run(*command(op, f, 48, model, opt, sar), "--threads", n)
            self.assertTrue(same_bytes(out[0], out[1]),
                            "%s: --threads 3 not the bytes of --threads 1"
                            % op)


def rank_pids(launcher_pid, rank):
    """The processes mpirun started as @p rank (from their environment)."""
    pids = []
    for env in glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(env, "rb") as f:
                items = f.read().split(b"\0")
            with open(env.replace("environ", "stat")) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == launcher_pid and \
                ("OMPI_COMM_WORLD_RANK=%d" % rank).encode() in items:
            pids.append(int(env.split("/")[2]))
    return pids


class TestKillResume(unittest.TestCase):
    """A rank killed halfway: the job fails and nothing is in place; the
    same command with --resume (on another number of ranks) completes it,
    equal to an uninterrupted run, from the tiles already done."""

    def test_kill_then_resume(self):
        d = tmpdir("mpi_kill")
        run("synth", "-q", "--size", "640", os.path.join(d, "s"))
        model, _, _ = Scene.get()
        opt = os.path.join(d, "s", "optical.tif")
        sar = os.path.join(d, "s", "sar.tif")
        ref = os.path.join(d, "ref.tif")
        run("embed", "-q", "--tile", "32", model, opt, sar, ref)
        out = os.path.join(d, "out.tif")
        journal = out + ".mmcl-journal"
        args = ["embed", "-q", "--resume", "--tile", "32", model, opt, sar,
                out]
        size = os.path.getsize(ref)
        killed = False
        for attempt in range(3):  # the machine may be faster than the poll
            p = mpirun(3, *args, wait=False)
            deadline = time.time() + 120
            while p.poll() is None and time.time() < deadline:
                # Halfway: a few tiles journaled (the embedding is about
                # as big uncompressed as in the GeoTIFF, 400 tiles).
                if os.path.exists(journal) and \
                        os.path.getsize(journal) > size // 8:
                    for pid in rank_pids(p.pid, 1):
                        os.kill(pid, signal.SIGKILL)
                        killed = True
                    break
                time.sleep(0.005)
            _, err = p.communicate(timeout=120)
            if killed:
                break
            self.assertEqual(p.returncode, 0, err)
            os.remove(out)
            for f in glob.glob(os.path.join(d, "out.*")):
                os.remove(f)
        if not killed:
            self.skipTest("the job finished before a rank could be killed")
        self.assertNotEqual(p.returncode, 0, "a killed rank, exit 0")
        self.assertFalse(os.path.exists(out),
                         "an output in place after a killed rank")
        self.assertTrue(os.path.exists(journal), "no journal to resume from")
        journaled = os.path.getsize(journal)
        p = mpirun(2, "--config", "CPL_DEBUG", "MMCL", *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(same_bytes(ref, out),
                        "resumed output differs from an uninterrupted run")
        self.assertFalse(os.path.exists(journal), "journal left in place")
        self.assertRegex(p.stderr, r"resumed: [1-9][0-9]* of 400 tiles",
                         "the journal's %d bytes were not used" % journaled)

    def test_journal_of_another_job_refused(self):
        model, opt, sar = Scene.get()
        d = tmpdir("mpi_journal_other")
        out = os.path.join(d, "e.tif")
        with open(out + ".mmcl-journal", "wb") as f:
            f.write(b"MMCLJRN1" + b"\x05" + b"\0" * 7 + b"other")
        p = mpirun(2, "embed", "-q", "--resume", model, opt, sar, out)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("is not one of this job", p.stderr)
        self.assertFalse(os.path.exists(out))


class TestFailures(unittest.TestCase):

    def test_unreadable_tile_stops_every_rank(self):
        model, opt, sar = Scene.get()
        d = tmpdir("mpi_bad_tile")
        # A copy of the optical raster with a tile's bytes destroyed.
        bad = os.path.join(d, "bad.tif")
        before = damaged_copy(opt, bad)
        out = os.path.join(d, "e.tif")
        p = mpirun(3, "embed", "-q", "--tile", "32", model, bad, sar, out)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("bad.tif", one_message(self, p.stderr, "embed"))
        self.assertEqual(sorted(os.listdir(d)), ["bad.tif"],
                         "something left beside the input")
        with open(bad, "rb") as f:
            self.assertEqual(f.read(), before, "input modified")

    def test_command_that_does_not_share_refused(self):
        d = tmpdir("mpi_synth")
        p = mpirun(2, "synth", "-q", os.path.join(d, "s"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("only embed, infoloss, align and train share", p.stderr)
        self.assertEqual(os.listdir(d), [])

    def test_launch_mpi_does_not_see(self):
        # What srun without the MPI's PMI plugin looks like: the launcher
        # says 2 processes, MPI starts alone.
        model, opt, sar = Scene.get()
        d = tmpdir("mpi_pmi")
        out = os.path.join(d, "e.tif")
        # MPI's session files go to TMPDIR: finalized, MPI removes them
        # (its helper process may take a moment).
        tmp = tmpdir("mpi_pmi_tmp")
        env = dict(ENV, PMI_SIZE="2", TMPDIR=tmp)
        p = subprocess.run([MMCL, "embed", "-q", model, opt, sar, out],
                           env=env, capture_output=True, text=True,
                           timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("the launcher started 2 processes, but MPI sees 1",
                      p.stderr)
        self.assertEqual(os.listdir(d), [])
        deadline = time.time() + 10
        while os.listdir(tmp) and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(os.listdir(tmp), [],
                         "MPI's session files left in TMPDIR")


if __name__ == "__main__":
    unittest.main()
