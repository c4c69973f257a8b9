# SPDX-License-Identifier: MIT
"""Runs the mmcl program for a Processing algorithm.

The program prints GDAL's progress bar ("0...10...20...", 2.5 % a dot) on
stdout (on stderr with --json, whose stdout is the JSON) and its messages ("ERROR n: mmcl CMD: ...") on stderr. The runner
turns the bar into feedback.setProgress(), shows the other lines in the
log, polls feedback.isCanceled() and stops the program when the user
cancels, and raises QgsProcessingException with the program's own message
when it exits non-zero.

mmcl writes every output in a private folder beside it
("<name>.mmcl-tmp-<pid>-XXXXXX") and moves it into place when complete.
On SIGTERM the program stops at its next progress step and removes that
folder itself (a SIGTERM that comes once the outputs are in place changes
nothing: the run succeeds). The runner sends SIGTERM on cancel, SIGKILL
after a grace period, and then removes any temporary folder that still
carries the stopped program's pid.

No QGIS import at module level except qgis.core, so that the module also
loads in a bare PyQGIS script.
"""
import os
import queue
import re
import shutil
import subprocess
import threading
import time

from qgis.core import QgsProcessingException

# One progress line of GDALTermProgress, possibly incomplete.
_PROGRESS_LINE = re.compile(r"[0-9.]+( - done\.?)?")
_PROGRESS_TOKEN = re.compile(r"\d+|\.")
# Seconds between two looks at feedback.isCanceled(), and the grace given
# to the program after SIGTERM before SIGKILL.
_POLL = 0.05
_GRACE = 3.0


# Where the provider setting is, for the messages.
SETTING = "Settings > Options > Processing > Providers > mmcl"


def recorded_programs():
    """The programs named in program_path.txt beside the plugin, in order.

    `cmake --install` writes the installed program there, relative to the
    plugin folder; the ZIP of the qgis_zip target carries the absolute
    install path, then the program of the build that made the ZIP (a ZIP
    is installed into a QGIS profile, far from both).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    recorded = os.path.join(here, "program_path.txt")
    if not os.path.isfile(recorded):
        return []
    with open(recorded, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    return [os.path.normpath(os.path.join(here, line)) for line in lines
            if line]


def search_program(configured=None):
    """(the mmcl program to run or None, the places looked at in vain).

    In order: the provider setting, the MMCL_PROGRAM environment variable,
    the programs recorded beside the plugin (program_path.txt) and `mmcl`
    on PATH.
    """
    if configured:
        return configured, []
    tried = ["the provider setting (%s)" % SETTING]
    if os.environ.get("MMCL_PROGRAM"):
        return os.environ["MMCL_PROGRAM"], tried
    tried.append("MMCL_PROGRAM (not set)")
    for path in recorded_programs():
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path, tried
        tried.append(path)
    found = shutil.which("mmcl")
    if found:
        return found, tried
    tried.append("mmcl on PATH")
    return None, tried


def find_program(configured=None):
    """The mmcl program to run, or None (see search_program)."""
    return search_program(configured)[0]


def not_found_message(tried):
    """What to tell the user when no program was found."""
    return ("the mmcl program was not found; looked at: %s. Set its path "
            "in %s (or the MMCL_PROGRAM environment variable), or put mmcl "
            "on PATH" % ("; ".join(tried), SETTING))


def progress_of(line):
    """Percentage shown by a (partial) GDAL progress line, or None."""
    if not line or not _PROGRESS_LINE.fullmatch(line):
        return None
    pct = 0.0
    for token in _PROGRESS_TOKEN.findall(line.split(" ")[0]):
        pct = float(token) if token != "." else pct + 2.5
    if line.endswith("done."):
        pct = 100.0
    return min(pct, 100.0)


def _pump(stream, tag, sink):
    """Reader thread: forwards raw chunks of @p stream to @p sink."""
    fd = stream.fileno()
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        sink.put((tag, chunk))
    sink.put((tag, None))


def remove_temporaries(folders, pid):
    """Deletes the temporary files a stopped mmcl (process @p pid) left."""
    pattern = re.compile(r"\.(?:mmcl-)?tmp-%d(?:[-.].*)?$" % pid)
    removed = []
    for folder in set(folders):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if pattern.search(name):
                path = os.path.join(folder, name)
                try:
                    if os.path.isdir(path):
                        shutil.rmtree(path)
                    else:
                        os.remove(path)
                    removed.append(path)
                except OSError:
                    pass
    return removed


class Result:
    """What a finished run printed."""

    def __init__(self, stdout, stderr):
        self.stdout = stdout
        self.stderr = stderr


def run(program, command, args, feedback=None, output_folders=(),
        capture_stdout=False, env=None):
    """Runs `program command args...` and returns a Result.

    @p output_folders are searched for temporary files when the run is
    cancelled. With @p capture_stdout the standard output (a JSON document)
    is kept and not shown line by line.

    Raises QgsProcessingException when the program cannot start, exits
    non-zero or is cancelled.
    """
    argv = [program, command] + [str(a) for a in args]
    if feedback is not None:
        feedback.pushCommandInfo(" ".join(_quote(a) for a in argv))
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
    except OSError as e:
        raise QgsProcessingException(
            "cannot run the mmcl program '%s': %s. Set its path in %s, or "
            "put it on PATH." % (program, e.strerror or e, SETTING))

    chunks = queue.Queue()
    readers = [threading.Thread(target=_pump, args=(proc.stdout, 1, chunks),
                                daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, 2, chunks),
                                daemon=True)]
    for t in readers:
        t.start()

    out_text, err_lines = [], []
    line = {1: b"", 2: b""}
    open_streams = 2
    cancelled = False

    def emit(tag, raw, complete):
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        # The bar is on stdout, or on stderr when stdout holds JSON.
        pct = progress_of(text)
        if pct is not None:
            if feedback is not None:
                feedback.setProgress(pct)
            return
        if not complete:
            return
        if tag == 1:
            if capture_stdout:
                return
            if feedback is not None and text:
                feedback.pushConsoleInfo(text)
            return
        err_lines.append(text)
        if feedback is None or not text:
            return
        if text.startswith("ERROR"):
            return  # raised as the exception's message
        if text.startswith("Warning"):
            feedback.pushWarning(text)
        else:
            feedback.pushConsoleInfo(text)

    while open_streams:
        if feedback is not None and feedback.isCanceled() and not cancelled:
            cancelled = True
            _stop(proc)
        try:
            tag, chunk = chunks.get(timeout=_POLL)
        except queue.Empty:
            continue
        if chunk is None:
            open_streams -= 1
            if line[tag]:
                emit(tag, line[tag], True)
                line[tag] = b""
            continue
        if tag == 1 and capture_stdout:
            out_text.append(chunk)
        buf = line[tag] + chunk
        *complete, rest = re.split(rb"(?<=\n)", buf)
        for c in complete:
            emit(tag, c, True)
        line[tag] = rest
        if rest:
            emit(tag, rest, False)

    while True:
        if feedback is not None and feedback.isCanceled() and not cancelled:
            cancelled = True
            _stop(proc)
        try:
            code = proc.wait(timeout=_POLL)
            break
        except subprocess.TimeoutExpired:
            continue
    for t in readers:
        t.join()
    proc.stdout.close()
    proc.stderr.close()

    if cancelled:
        remove_temporaries(output_folders, proc.pid)
        raise QgsProcessingException(
            "mmcl %s was cancelled: the program was stopped and no output "
            "was written" % command)
    stdout = b"".join(out_text).decode("utf-8", "replace")
    if code != 0:
        errors = [l for l in err_lines if l.startswith("ERROR")]
        message = "\n".join(errors or err_lines[-5:]) or \
            "no message (exit code %d)" % code
        if code < 0:
            message = "mmcl %s was killed by signal %d. %s" % (
                command, -code, message)
            remove_temporaries(output_folders, proc.pid)
        raise QgsProcessingException(message)
    return Result(stdout, "\n".join(err_lines))


def _stop(proc):
    """SIGTERM, then SIGKILL if the program is still there after a grace."""
    if proc.poll() is not None:
        return
    proc.terminate()
    deadline = time.monotonic() + _GRACE
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(_POLL)
    if proc.poll() is None:
        proc.kill()


def _quote(arg):
    if arg and re.fullmatch(r"[\w@%+=:,./-]+", arg):
        return arg
    return "'" + arg.replace("'", "'\"'\"'") + "'"
