# SPDX-License-Identifier: MIT
"""The OpenBLAS kernel choice as users meet it (include/mmcl/blas.h):

- `mmcl` runs itself again with OPENBLAS_CORETYPE set when OpenBLAS fell
  back to a generic kernel this CPU outgrows, and `mmcl --version` says so;
- a user's OPENBLAS_CORETYPE is kept, and `mmcl --version` says so;
- commands run through that second execution with their arguments, exit
  codes and outputs intact;
- a process that loads the GDAL plugin gets one warning with the fix.

The misdetection is simulated with MMCL_BLAS_TEST_DETECTED=Prescott (for
tests only), so that the tests run the same on any x86-64 CPU; the kernel
expected is computed here from the flags in /proc/cpuinfo. Every child gets
its own environment: OPENBLAS_CORETYPE set by whoever runs the tests (CI
runs them with Prescott and with Haswell) is removed where the test needs
it unset.

    MMCL=build/mmcl GDAL_DRIVER_PATH=build/plugin \\
        python3 tests/cli/test_blas_kernel_cli.py -v
"""
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from mmcl_cli import MMCL, SAMPLE, cpu_flags

HOOK = "MMCL_BLAS_TEST_DETECTED"


def expected_kernel(flags):
    """The kernel mmcl asks for on a CPU where OpenBLAS picked Prescott,
    written from the rule (not from the C code), or None."""
    avx512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl"}
    if not {"avx", "avx2", "fma"} <= flags:
        return "Sandybridge" if "avx" in flags else None
    if avx512 <= flags:
        return "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    return "Haswell"


def child_env(**set_vars):
    """This environment without the variables the choice reads, plus
    @p set_vars."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "MMCL_BLAS_DETECTED", HOOK)}
    env.update(set_vars)
    return env


def run(args, env, check=True):
    p = subprocess.run([str(a) for a in args], capture_output=True,
                       text=True, env=env)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" %
                             (" ".join(map(str, args)), p.returncode,
                              p.stderr))
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read()


def blas_line(env):
    p = run([MMCL, "--version"], env)
    lines = p.stdout.splitlines()
    # The first line is read by scripts: unchanged.
    assert re.fullmatch(r"mmcl \d+\.\d+\.\d+ \(GDAL [^)]+\)", lines[0]), \
        lines[0]
    assert len(lines) == 3 and lines[1].startswith("BLAS: "), p.stdout
    assert lines[2].startswith("Encoders: "), p.stdout
    return lines[1]


def wait_until(test, cond, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not cond():
        test.assertLess(time.monotonic(), deadline, what)
        time.sleep(0.05)


def fd_links(proc, first):
    """What the descriptors from @p first up of the process at @p proc
    (its /proc folder) point to."""
    links = []
    for fd in os.listdir(proc + "fd"):
        try:
            if int(fd) >= first:
                links.append(os.readlink(proc + "fd/" + fd))
        except OSError:  # closed meanwhile
            pass
    return links


@contextlib.contextmanager
def blocked_on_stdin(test, command, out_name):
    """`mmcl COMMAND /dev/stdin SAR OUT` started as on a CPU where OpenBLAS
    detects Prescott: it blocks reading its "optical raster" from stdin.
    Yields its /proc folder and its arguments; then closes stdin and checks
    that it failed on that raster and wrote nothing."""
    out = os.path.join(test.dir, out_name)
    args = [MMCL, command, "/dev/stdin", os.path.join(SAMPLE, "sar.tif"),
            out]
    p = subprocess.Popen(args, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=child_env(**{HOOK: "Prescott"}))
    try:
        yield "/proc/%d/" % p.pid, args
    finally:
        _, err = p.communicate(timeout=60)
    test.assertEqual(p.returncode, 1, err)
    test.assertIn(b"cannot open optical raster '/dev/stdin'", err)
    test.assertFalse(os.path.exists(out))


@unittest.skipUnless(platform.machine() == "x86_64",
                     "the kernel choice is for x86-64")
class BlasKernel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.flags = cpu_flags()
        cls.want = expected_kernel(cls.flags)
        line = blas_line(child_env(OPENBLAS_CORETYPE="Prescott"))
        if not line.startswith("BLAS: OpenBLAS "):
            raise unittest.SkipTest("the BLAS is not OpenBLAS: " + line)
        print("this CPU: mmcl would choose %s over Prescott" % cls.want)
        cls.dir = tempfile.mkdtemp(prefix="mmcl blas ")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_version_reports_the_kernel_mmcl_chose(self):
        line = blas_line(child_env(**{HOOK: "Prescott",
                                      "OPENBLAS_NUM_THREADS": "1"}))
        print(line)
        self.assertRegex(line, r"^BLAS: OpenBLAS \d+\.\d+\.\d+, kernel ")
        self.assertTrue(line.endswith(", 1 thread"), line)
        if self.want:
            self.assertIn("kernel %s (chosen by mmcl: OpenBLAS detected "
                          "Prescott, which this CPU outgrows)" % self.want,
                          line)
        else:
            self.assertNotIn("chosen by mmcl", line)

    def test_version_keeps_and_reports_the_users_coretype(self):
        user = "Haswell" if {"avx2", "fma"} <= self.flags else "Prescott"
        # Also with the test hook and a stale record of an earlier choice:
        # the user's variable wins, always.
        for extra in ({}, {HOOK: "Prescott"},
                      {HOOK: "Prescott", "MMCL_BLAS_DETECTED": "Prescott"}):
            line = blas_line(child_env(OPENBLAS_CORETYPE=user, **extra))
            self.assertIn("kernel %s (OPENBLAS_CORETYPE=%s set by the user)"
                          % (user, user), line)
            self.assertNotIn("chosen by mmcl", line)

    def test_commands_run_through_the_second_execution_intact(self):
        hook = child_env(**{HOOK: "Prescott"})
        # Arguments with spaces reach the command; it writes the same files
        # as a run that starts with the chosen kernel set by the user.
        out = os.path.join(self.dir, "synth out")
        ref = os.path.join(self.dir, "synth ref")
        args = ["synth", "-q", "--preset", "specific", "--size", "64",
                "--seed", "3", "--sar-srs", "EPSG:4326", "--sar-res",
                "0.0002"]
        run([MMCL] + args + [out], hook)
        run([MMCL] + args + [ref],
            child_env(OPENBLAS_CORETYPE=self.want) if self.want
            else child_env())
        for f in sorted(os.listdir(ref)):
            with open(os.path.join(out, f), "rb") as a, \
                    open(os.path.join(ref, f), "rb") as b:
                self.assertEqual(a.read(), b.read(), f)
        # Exit codes and messages of failures, and stdout, are intact.
        p = run([MMCL] + args + [out], hook, check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("exists", p.stderr)
        p = run([MMCL, "synth", "--no-such-option", out], hook, check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("unknown option '--no-such-option'", p.stderr)
        usage = json.loads(run([MMCL, "--json-usage"], hook).stdout)
        self.assertEqual(usage["program"], "mmcl")

    def test_second_execution_keeps_the_process(self):
        if not self.want:
            self.skipTest("mmcl keeps OpenBLAS's kernel on this CPU")
        # The program blocks reading its "optical raster" from stdin, after
        # the second execution: look at it then.
        with blocked_on_stdin(self, "train", "never written.mmcl") as (proc,
                                                                      args):
            wait_until(self, lambda: b"\0OPENBLAS_CORETYPE=" in
                       b"\0" + read(proc + "environ"),
                       "the program did not execute itself again")
            # Same process id, same arguments, and the same name for ps,
            # pgrep and QGIS.
            self.assertEqual(read(proc + "cmdline").split(b"\0")[:-1],
                             [a.encode() for a in args])
            self.assertEqual(read(proc + "comm").decode().strip(),
                             os.path.basename(MMCL)[:15])
            self.assertEqual(os.path.realpath(proc + "exe"),
                             os.path.realpath(MMCL))

    def test_align_runs_without_a_second_execution(self):
        if not self.want:
            self.skipTest("mmcl keeps OpenBLAS's kernel on this CPU")
        # align does no BLAS work: it goes on in the first execution. Once
        # it blocks reading its "optical raster" from stdin (a descriptor
        # of its own on the pipe of stdin), its environment is still the
        # one it was started with.
        with blocked_on_stdin(self, "align", "never written.tif") as (proc,
                                                                     _):
            pipe = os.readlink(proc + "fd/0")
            wait_until(self, lambda: pipe in fd_links(proc, 3),
                       "align did not open its optical raster")
            self.assertNotIn(b"\0OPENBLAS_CORETYPE=",
                             b"\0" + read(proc + "environ"))

    @unittest.skipUnless(os.environ.get("GDAL_DRIVER_PATH"),
                         "needs GDAL_DRIVER_PATH (the plugin's folder)")
    def test_plugin_users_get_one_warning_with_the_fix(self):
        model = os.path.join(self.dir, "model.mmcl")
        desc = os.path.join(self.dir, "emb.mmcl.json")
        opt, sar = (os.path.join(SAMPLE, "optical.tif"),
                    os.path.join(SAMPLE, "sar.tif"))
        env = child_env()
        run([MMCL, "train", "-q", "--objective", "cca", "--dim", "2",
             "--patch", "1", "--samples", "2000", opt, sar, model], env)
        run([MMCL, "embed", "-q", "--lazy", model, opt, sar, desc], env)

        # gdal_translate reads the lazy product through the plugin on
        # several threads, Python opens and reads it three times: one
        # warning per process, naming the fallback and the fix.
        hook = child_env(**{HOOK: "Prescott"})
        reread = ("import sys\nfrom osgeo import gdal\nfor i in range(3):\n"
                  "    gdal.Open(sys.argv[1]).ReadAsArray()\n")
        for args in (["gdal_translate", "-q", desc,
                      os.path.join(self.dir, "emb.tif")],
                     [sys.executable, "-c", reread, desc]):
            p = run(args, hook)
            warnings = [line for line in p.stderr.splitlines()
                        if "OPENBLAS_CORETYPE" in line]
            if not self.want:
                self.assertEqual(warnings, [], p.stderr)
                continue
            self.assertEqual(len(warnings), 1, p.stderr)
            self.assertIn("Warning 1: mmcl: OpenBLAS uses its generic "
                          "'Prescott' kernel on this CPU", warnings[0])
            self.assertIn("several times slower", warnings[0])
            self.assertIn("Fix: set OPENBLAS_CORETYPE=%s in the environment "
                          "before starting the program (e.g. QGIS)."
                          % self.want, warnings[0])
        if not self.want:
            return

        # No warning when the user set the variable, whatever its value.
        for user in ("Prescott", self.want):
            p = run(["gdalinfo", desc],
                    child_env(OPENBLAS_CORETYPE=user, **{HOOK: "Prescott"}))
            self.assertNotIn("OPENBLAS_CORETYPE", p.stderr)

        # mmcl --check-plugin tells plugin users the same fix.
        p = run([MMCL, "--check-plugin"], child_env(**{HOOK: "Prescott"}))
        self.assertIn("get OpenBLAS's 'Prescott' kernel", p.stdout)
        self.assertIn("To fix: set OPENBLAS_CORETYPE=%s" % self.want,
                      p.stdout)


if __name__ == "__main__":
    unittest.main()
