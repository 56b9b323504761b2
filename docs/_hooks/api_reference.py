"""MkDocs hook that writes the member list of an API reference page at build time.

A page line ``<!-- api-members: difflux.core -->`` becomes one section per
private module of the package (``_api``, ``_ops_elementwise``, ...), each
listing the public names that the package re-exports from that module, plus a
section per public submodule (``testing``). A name that the package
re-exports from a public submodule (``ppl.NUTS`` from ``ppl.infer``) appears
only in that submodule's section. The reference therefore covers
every public name without a hand-kept list going stale as operations are
added. Section titles come from ``SECTION_TITLES``. A module missing from it
gets a title made from its name, after the known sections.
"""

from __future__ import annotations

import importlib
import re
import types
from collections import defaultdict
from typing import Any

MARKER = re.compile(r"^<!-- api-members: (?P<package>[\w.]+) -->$", re.MULTILINE)

# Private module name -> section title, in the order the sections appear.
SECTION_TITLES = {
    "_api": "Differentiation",
    "_backend": "Backends",
    "_tree": "Structures (pytrees)",
    "_ops_creation": "Array creation",
    "_ops_dtype": "Data types",
    "_ops_elementwise": "Element-wise operations",
    "_ops_reduction": "Reductions",
    "_ops_shape": "Shapes",
    "_ops_manipulation": "Manipulation",
    "_ops_index": "Indexing and index updates",
    "_ops_matmul": "Matrix products",
    "_core": "Extending difflux: primitives and tracers",
    "_primitives": "Modelling primitives",
    "_module_prior": "Priors over modules",
    "_arviz": "ArviZ export",
}


def _title_of(module_name: str) -> str:
    if module_name in SECTION_TITLES:
        return SECTION_TITLES[module_name]
    words = module_name.removeprefix("_").removeprefix("ops_").replace("_", " ")
    return words.capitalize()


def _sections(package_name: str) -> dict[str, list[str]]:
    """Group the public names of ``package_name`` by the private module defining them."""
    package = importlib.import_module(package_name)
    public_submodules = {
        name
        for name, value in vars(package).items()
        if isinstance(value, types.ModuleType)
        and not name.startswith("_")
        and value.__name__ == f"{package_name}.{name}"
    }
    groups: dict[str, list[str]] = defaultdict(list)
    for name in sorted(vars(package)):
        if name.startswith("_"):
            continue
        value = getattr(package, name)
        if isinstance(value, types.ModuleType):
            if value.__name__ == f"{package_name}.{name}":
                groups[name].append("")  # a public submodule: documented whole
            continue
        module = getattr(value, "__module__", None) or ""
        if not module.startswith(f"{package_name}."):
            continue  # re-exported from another library, such as numpy
        module_name = module.removeprefix(f"{package_name}.")
        if module_name.split(".")[0] in public_submodules:
            continue  # re-exported from a public submodule, whose section documents it
        groups[module_name].append(name)
    return groups


def _section_order(module_name: str) -> tuple[int, str]:
    known = list(SECTION_TITLES)
    if module_name in known:
        return (0, f"{known.index(module_name):03d}")
    if module_name.startswith("_"):
        return (1, module_name)
    return (2, module_name)  # public submodules last


def render_members(package_name: str) -> str:
    lines = []
    groups = _sections(package_name)
    for module_name in sorted(groups, key=_section_order):
        names = groups[module_name]
        if names == [""]:
            lines += [f"## {package_name}.{module_name}", "", f"::: {package_name}.{module_name}", ""]
            continue
        lines += [f"## {_title_of(module_name)}", ""]
        for name in names:
            lines += [f"::: {package_name}.{name}", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return MARKER.sub(lambda match: render_members(match["package"]), markdown)
