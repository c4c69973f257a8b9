# SPDX-License-Identifier: MIT
"""The "mmcl" Processing provider: one algorithm per mmcl command.

The algorithms are built from `mmcl --json-usage`, which the program prints
from the same option tables the library parses. The program is the one set
in Settings > Options > Processing > Providers > mmcl, else the
MMCL_PROGRAM environment variable, else the program recorded beside the
plugin (by `cmake --install`, or in the ZIP: where the program installs and
the program of the build that made the ZIP), else `mmcl` on PATH. When none
is found, the provider says where it looked. Changing the setting reloads
the algorithms.
"""
import json
import os
import subprocess

from qgis.core import Qgis, QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from processing.core.ProcessingConfig import ProcessingConfig, Setting

from . import runner
from .algorithm import TITLES, MmclAlgorithm, unsupported

ACTIVATE = "MMCL_ACTIVATE"
PROGRAM = "MMCL_PROGRAM_PATH"
ICON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "icon.svg")


def configured_program():
    """The program the algorithms run, or None when there is none."""
    return runner.find_program(ProcessingConfig.getSetting(PROGRAM))


def read_usage(program):
    """`program --json-usage` as a dict; raises RuntimeError on failure."""
    try:
        p = subprocess.run([program, "--json-usage"], capture_output=True,
                           text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError("cannot run '%s --json-usage': %s" % (program, e))
    if p.returncode != 0:
        raise RuntimeError("'%s --json-usage' failed: %s" %
                           (program, p.stderr.strip()))
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        raise RuntimeError("'%s --json-usage' printed no valid JSON: %s" %
                           (program, e))


class MmclProvider(QgsProcessingProvider):

    def __init__(self):
        super().__init__()
        self._version = ""
        self._problem = ""

    def load(self):
        ProcessingConfig.settingIcons[self.name()] = self.icon()
        ProcessingConfig.addSetting(Setting(
            self.name(), ACTIVATE, "Activate", True))
        ProcessingConfig.addSetting(Setting(
            self.name(), PROGRAM,
            "mmcl program (empty: MMCL_PROGRAM, the installed program, or "
            "mmcl on PATH)", "", valuetype=Setting.FILE))
        ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self):
        ProcessingConfig.removeSetting(ACTIVATE)
        ProcessingConfig.removeSetting(PROGRAM)

    def problem(self):
        """Why the provider has no algorithms, or ""."""
        return self._problem

    def isActive(self):
        return bool(ProcessingConfig.getSetting(ACTIVATE))

    def setActive(self, active):
        ProcessingConfig.setSettingValue(ACTIVATE, active)

    def id(self):
        return "mmcl"

    def name(self):
        return "mmcl"

    def longName(self):
        if self._version:
            return "mmcl %s (optical/SAR embeddings)" % self._version
        return "mmcl (%s)" % (self._problem or "program not found")

    def icon(self):
        return QIcon(ICON)

    def svgIconPath(self):
        return ICON

    def loadAlgorithms(self):
        self._version, self._problem = "", ""
        program, tried = runner.search_program(
            ProcessingConfig.getSetting(PROGRAM))
        if not program:
            self._problem = runner.not_found_message(tried)
            QgsMessageLog.logMessage(self._problem, "mmcl", Qgis.Critical)
            return
        try:
            usage = read_usage(program)
        except RuntimeError as e:
            self._problem = str(e)
            QgsMessageLog.logMessage(self._problem, "mmcl", Qgis.Critical)
            return
        self._version = usage.get("version", "")
        commands = {c["command"]: c for c in usage.get("commands", [])}
        for name in TITLES:
            if name not in commands:
                continue
            reason = unsupported(commands[name])
            if reason:
                QgsMessageLog.logMessage(
                    "mmcl %s is left out: %s (a newer mmcl than this "
                    "plugin?)" % (name, reason), "mmcl", Qgis.Warning)
                continue
            self.addAlgorithm(MmclAlgorithm(commands[name],
                                            configured_program))
