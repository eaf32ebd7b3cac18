"""Loaded by every Python process started with this folder on PYTHONPATH (the engines' own helper subprocesses
too, such as vLLM's model-registry inspection): installs the stand-ins of moeplan_stand_ins.py."""

import moeplan_stand_ins

moeplan_stand_ins.install()
