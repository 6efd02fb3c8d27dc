"""Every docstring example (``>>>``) in ``rankiqa`` and ``distortions`` runs as a doctest, so the
examples stay true. Modules are found by their source text, so a new example is picked up."""
import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules_with_examples() -> list[str]:
    names = []
    for package in ("rankiqa", "distortions"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if ">>>" in path.read_text(encoding="utf-8"):
                parts = path.relative_to(ROOT).with_suffix("").parts
                names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


def test_the_examples_are_found():
    assert {"distortions", "rankiqa.models", "rankiqa.torch_metric", "rankiqa.calibration"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    lines: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = doctest.DocTestFinder().find(module)
    for test in tests:
        runner.run(test, out=lines.append)
    assert sum(len(test.examples) for test in tests) > 0, f"{name}: no example found"
    assert runner.failures == 0, "".join(lines)
