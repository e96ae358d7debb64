"""Every case the bench knows: the core cases in cases.py, then each area's `bench/cases_<area>.py`
module (its CASES list), so an area adds cases without editing a shared file."""

from __future__ import annotations

import importlib
import pkgutil

import bench
from bench import cases


def _area_cases() -> list[cases.Case]:
    found: list[cases.Case] = []
    for module in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        if module.name.startswith("cases_"):
            found += importlib.import_module(f"bench.{module.name}").CASES
    return found


CASES: list[cases.Case] = cases.CASES + _area_cases()
BY_NAME = {case.name: case for case in CASES}
if len(BY_NAME) != len(CASES):
    raise RuntimeError("two bench cases share a name")
