"""Mutation testing of rankiqa's maths and tables: how many small deliberate bugs do the tests catch?

Each mutant changes ONE thing in a copy of the project (in a scratch folder, never in place) and
runs only the test files that cover that module; a mutant is *killed* when they fail (or time out)
and *survives* when they pass. mutmut 3 mutates function bodies only and cannot target the module-level
level tables of ``distortions/``, so this small AST-based tool does both with mutmut's operators:

* numbers ``n -> n + 1``; strings ``"s" -> "XXsXX"`` (docstrings and f-strings left alone);
* comparisons ``< <=``, ``> >=``, ``== !=``, ``in / not in``, ``is / is not`` swapped;
* arithmetic ``+ -``, ``* /``, ``// /``, ``% /``, ``** *``, ``& |``, ``<< >>`` swapped, also in ``+=``...;
* ``and / or`` swapped, ``not x -> x``, unary ``-x -> x``, ``True / False`` swapped;
* ``keyword=value`` default arguments mutated like any other constant;
* level tables (``levels=NAME`` of each ``@register``): each value scaled by 1.25 (ints by +1 when
  rounding would not change them; 0 -> 0.25), i.e. a plausible wrong table, not a wild one.

Table mutants run the oracle tests WITHOUT the test that compares the tables with their written-out
values (that one kills every table mutant by construction); so the table score measures whether
the behaviour checks notice a wrong parameter.

Proven-equivalent mutants (no input can tell them from the original, argued in ``EQUIVALENT``) are
listed, not run, and left out of the killed % (the usual mutation score: killed / non-equivalent).
An entry names the function, the source text and the change, so it stops matching (and the mutant
runs again) when that code changes; an entry that matches nothing is reported as stale.

Tests run in forked children of one process that imported NumPy/SciPy/torch/OpenCV once, so a
mutant costs about as much as its tests. Usage (not run in CI; Linux/macOS, needs os.fork):
    nice -n 19 python tools/mutation.py                 # every target
    nice -n 19 python tools/mutation.py --only metrics  # one target
    nice -n 19 python tools/mutation.py --list          # the mutants, without running tests
Prints a table of killed/survived per target and every survivor (file:line, what changed).
"""
from __future__ import annotations

import argparse
import ast
import copy
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TABLE_DESELECT = ["-k", "not test_level_table_is_the_expected_one and not test_kadid_derived_tables"]
# target name -> (source files, test files, extra pytest arguments, tables only)
TARGETS: dict[str, tuple[list[str], list[str], list[str], bool]] = {
    "metrics": (["rankiqa/metrics.py"], ["tests/test_metrics.py", "tests/test_metric_tables.py"], [], False),
    "losses": (["rankiqa/losses.py"], ["tests/test_losses.py", "tests/test_calibration.py"], ["-k", "not docs_mapping and not shipped_table and not train_with_targets"], False),
    "splits": (["rankiqa/data/splits.py"], ["tests/test_splits.py"], [], False),
    "seeding": (["rankiqa/seeding.py"], ["tests/test_splits.py"], [], False),
    "tables": (sorted(str(p.relative_to(REPO)) for p in (REPO / "distortions").glob("[a-z]*.py")
                      if p.name not in ("__init__.py", "sheet.py")),
               ["tests/test_distortion_oracles.py"], TABLE_DESELECT, True),
}
COMPARE_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
              ast.Mod: ast.Div, ast.Pow: ast.Mult, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
              ast.LShift: ast.RShift, ast.RShift: ast.LShift, ast.MatMult: ast.Mult}

# (path, enclosing function, source text of the mutated node, change) -> why no input can tell them apart
EQUIVALENT: dict[tuple[str, str, str, str], str] = {
    ("rankiqa/metrics.py", "logistic5", "-500", "-500 -> -499"):
        "exp(z) <= exp(-499) < 2**-53 for every clipped z <= -499, so 1 + exp(z) == 1.0 with either bound",
    ("rankiqa/metrics.py", "logistic5", "500", "500 -> 501"):
        "1 / (1 + exp(z)) <= 7.2e-218 for z >= 500, below half an ulp of 0.5, so 0.5 - it == 0.5 with either bound",
    ("rankiqa/metrics.py", "logistic4", "-500", "-500 -> -499"):
        "1 + exp(z) == 1.0 for z <= -499 with either bound, so the value is b1 exactly",
    ("rankiqa/metrics.py", "_initial_params", "direction > 0", "Gt -> GtE"):
        "direction is 1.0 or -1.0 (set on the line above), never 0",
}


@dataclass
class Mutant:
    target: str
    path: str
    line: int
    start: tuple[int, int]
    end: tuple[int, int]
    replacement: str
    description: str
    users: tuple[str, ...] = ()  # table mutants: the distortion names that use the table
    function: str = ""  # code mutants: the enclosing function ("" at module level)
    original: str = ""  # code mutants: the source text that is replaced

    @property
    def equivalence(self) -> str | None:
        """Why this mutant is equivalent, if ``EQUIVALENT`` lists it."""
        return EQUIVALENT.get((self.path, self.function, self.original, self.description))

    def apply(self, source: str) -> str:
        lines = source.splitlines(keepends=True)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line.encode("utf-8")))
        data = source.encode("utf-8")
        begin = offsets[self.start[0] - 1] + self.start[1]
        finish = offsets[self.end[0] - 1] + self.end[1]
        return (data[:begin] + self.replacement.encode("utf-8") + data[finish:]).decode("utf-8")


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, f-string parts, __future__ imports."""
    skip: set[int] = set()

    def mark(node):
        for sub in ast.walk(node):
            skip.add(id(sub))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                mark(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs, node.args.vararg, node.args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    mark(arg.annotation)
            if node.returns is not None:
                mark(node.returns)
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, ast.JoinedStr):
            mark(node)
        if isinstance(node, ast.ImportFrom):
            mark(node)
    return skip


def _variants(node: ast.AST) -> list[tuple[ast.AST, str]]:
    """(mutated copy of node, description) for every operator that applies to ``node``."""
    out = []
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            out.append((ast.Constant(not value), f"{value} -> {not value}"))
        elif isinstance(value, (int, float)):
            out.append((ast.Constant(value + 1), f"{value!r} -> {value + 1!r}"))
        elif isinstance(value, str) and MUTATE_STRINGS:
            out.append((ast.Constant(f"XX{value}XX"), f"{value!r} -> 'XX{value}XX'"))
    elif isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            if type(op) in COMPARE_SWAP:
                mutated = copy.deepcopy(node)
                mutated.ops[index] = COMPARE_SWAP[type(op)]()
                out.append((mutated, f"{type(op).__name__} -> {COMPARE_SWAP[type(op)].__name__}"))
    elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BINOP_SWAP:
        mutated = copy.deepcopy(node)
        mutated.op = BINOP_SWAP[type(node.op)]()
        out.append((mutated, f"{type(node.op).__name__} -> {type(mutated.op).__name__}"))
    elif isinstance(node, ast.BoolOp):
        mutated = copy.deepcopy(node)
        mutated.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append((mutated, f"{type(node.op).__name__} -> {type(mutated.op).__name__}"))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        if not (isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)):
            out.append((copy.deepcopy(node.operand), f"{type(node.op).__name__} removed"))
        else:
            out.append((ast.Constant(-node.operand.value + 1), f"-{node.operand.value!r} -> {-node.operand.value + 1!r}"))
    return out


def _scaled(value):
    if value == 0:
        return 0.25
    if isinstance(value, int):
        scaled = round(value * 1.25)
        return scaled if scaled != value else value + 1
    return value * 1.25


def table_mutants(target: str, path: str) -> list[Mutant]:
    source = (REPO / path).read_text(encoding="utf-8")
    tree = ast.parse(source)
    users: dict[str, tuple[str, ...]] = {}  # table name -> registered names using it
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            for keyword in node.keywords:
                if keyword.arg == "levels" and isinstance(keyword.value, ast.Name):
                    users[keyword.value.id] = (*users.get(keyword.value.id, ()), node.args[0].value)
    tables = set(users)
    mutants = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in tables and isinstance(node.value, ast.Tuple):
            for index, element in enumerate(node.value.elts):
                value = ast.literal_eval(element)
                new = _scaled(value)
                mutants.append(Mutant(target, path, element.lineno, (element.lineno, element.col_offset),
                                      (element.end_lineno, element.end_col_offset), repr(new),
                                      f"{node.targets[0].id}[{index}] {value!r} -> {new!r}", users[node.targets[0].id]))
    return mutants


def _link_parents(tree: ast.AST) -> None:
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            child._parent = parent  # type: ignore[attr-defined]


def all_mutants(only: list[str] | None) -> list[Mutant]:
    mutants = []
    for target, (paths, _, _, tables) in TARGETS.items():
        if only and target not in only:
            continue
        for path in paths:
            if tables:
                mutants += table_mutants(target, path)
            else:
                mutants += code_mutants(target, path)
    return mutants


def code_mutants(target: str, path: str) -> list[Mutant]:
    """Every operator mutant of one source file."""
    source = (REPO / path).read_text(encoding="utf-8")
    tree = ast.parse(source)
    _link_parents(tree)
    skip = _skipped_nodes(tree)
    mutants = []
    for node in ast.walk(tree):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        if isinstance(node, ast.Constant) and isinstance(getattr(node, "_parent", None), ast.UnaryOp):
            continue  # handled with its sign
        for mutated, description in _variants(node):
            mutants.append(Mutant(target, path, node.lineno, (node.lineno, node.col_offset),
                                  (node.end_lineno, node.end_col_offset), ast.unparse(mutated), description,
                                  function=_enclosing_function(node), original=ast.get_source_segment(source, node) or ""))
    return mutants


def _enclosing_function(node: ast.AST) -> str:
    parent = getattr(node, "_parent", None)
    while parent is not None and not isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
        parent = getattr(parent, "_parent", None)
    return parent.name if parent is not None else ""


MUTATE_STRINGS = False  # --strings: message texts are checked by the CLI error tests, not the point here
PRELOADED = ("numpy", "scipy.stats", "scipy.optimize", "scipy.interpolate", "pandas", "torch", "cv2", "PIL.Image", "pytest")


def run_tests(scratch: Path, tests: list[str], extra: list[str], timeout: float) -> tuple[str, float]:
    """'killed', 'survived' or 'timeout' (counted as killed) for the scratch copy as it is now.

    The tests run in a forked child of this process, which has imported the heavy third-party
    libraries once (not rankiqa or distortions: the child imports those, mutated, from ``scratch``).
    """
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        code = 3
        try:
            import pytest

            os.chdir(scratch)
            sys.path.insert(0, str(scratch))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", *extra, *tests]))
        finally:
            os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > timeout:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - start
        time.sleep(0.05)
    code = os.waitstatus_to_exitcode(status)
    # 0: all passed; 5: no test selected (nothing covers this mutant): both mean it survived
    return ("survived" if code in (0, 5) else "killed"), time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(TARGETS), help="Run only this target (repeatable).")
    parser.add_argument("--list", action="store_true", help="List the mutants and exit.")
    parser.add_argument("--timeout", type=float, default=300.0, help="Seconds per mutant before it counts as killed.")
    parser.add_argument("--json", type=Path, help="Also write every mutant's outcome to this JSON file (updated as it runs).")
    parser.add_argument("--survivors-of", type=Path, metavar="JSON",
                        help="Run only the mutants that survived in this earlier --json output (after adding tests).")
    parser.add_argument("--skip-baseline", action="store_true", help="Do not first check that the unmutated tests pass.")
    parser.add_argument("--strings", action="store_true", help="Also mutate string constants (error messages...).")
    parser.add_argument("--sample", type=int, metavar="N", help="Run a seeded random sample of N mutants per target "
                        "(the same sample every time); default: all.")
    args = parser.parse_args(argv)
    global MUTATE_STRINGS
    MUTATE_STRINGS = args.strings
    mutants = all_mutants(args.only)
    matched = {(m.path, m.function, m.original, m.description) for m in mutants if m.equivalence}
    paths = {m.path for m in mutants}
    for key in EQUIVALENT.keys() - matched:
        if key[0] in paths:
            print(f"stale EQUIVALENT entry (matches no mutant; the code changed?): {key}", file=sys.stderr)
    if args.sample:
        import random

        sampled = []
        for target in sorted({m.target for m in mutants}):
            of_target = [m for m in mutants if m.target == target]
            sampled += random.Random(f"rankiqa-mutation-{target}").sample(of_target, min(args.sample, len(of_target)))
        mutants = sampled
    if args.survivors_of:
        survived = {(r["path"], r["line"], r["description"]) for r in json.loads(args.survivors_of.read_text())
                    if r["outcome"] == "survived"}
        mutants = [m for m in mutants if (m.path, m.line, m.description) in survived]
    # round-robin over the targets, so that an interrupted run has measured every target alike
    queues = [[m for m in mutants if m.target == target] for target in sorted({m.target for m in mutants})]
    mutants = [queue[i] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]
    if args.list:
        for mutant in mutants:
            print(f"{mutant.target:8s} {mutant.path}:{mutant.line}: {mutant.description}"
                  + ("  [equivalent]" if mutant.equivalence else ""))
        print(f"{len(mutants)} mutants")
        return 0
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    sys.dont_write_bytecode = True  # a mutant of the same size and mtime must never run a stale .pyc
    os.environ["OMP_NUM_THREADS"] = "1"
    for module in PRELOADED:
        importlib.import_module(module)
    scratch = Path(tempfile.mkdtemp(prefix="rankiqa-mutation-"))
    try:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "default.pt", "images")
        for name in ("rankiqa", "distortions", "tests", "setup.cfg", "pyproject.toml"):
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, scratch / name, ignore=ignore)
            else:
                shutil.copy2(source, scratch / name)
        targets = [] if args.skip_baseline else sorted({m.target for m in mutants})
        for target in targets:  # the unmutated code must pass, or every mutant would look killed
            _, tests, extra, _ = TARGETS[target]
            outcome, seconds = run_tests(scratch, tests, extra, args.timeout)
            if outcome != "survived":
                print(f"{target}: the tests fail WITHOUT any mutation ({' '.join(tests)}); fix them first", file=sys.stderr)
                return 1
            print(f"{target}: baseline passes in {seconds:.1f} s", file=sys.stderr, flush=True)
        results = []
        for number, mutant in enumerate(mutants, start=1):
            if mutant.equivalence:
                results.append({**mutant.__dict__, "outcome": "equivalent", "seconds": 0.0})
                continue
            path = scratch / mutant.path
            original = path.read_text(encoding="utf-8")
            mutated = mutant.apply(original)
            try:
                compile(mutated, str(path), "exec")
            except SyntaxError:
                continue  # not a valid program: not a mutant
            path.write_text(mutated, encoding="utf-8")
            try:
                _, tests, extra, _ = TARGETS[mutant.target]
                if mutant.users:
                    extra = ["-k", f"({' or '.join(mutant.users)}) and ({extra[1]})"]
                outcome, seconds = run_tests(scratch, tests, extra, args.timeout)
            finally:
                path.write_text(original, encoding="utf-8")
            results.append({**mutant.__dict__, "outcome": outcome, "seconds": round(seconds, 1)})
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
            print(f"[{number}/{len(mutants)}] {outcome:8s} {mutant.path}:{mutant.line} {mutant.description}",
                  file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("| target | mutants | equivalent | killed | survived | killed % of non-equivalent |")
    print("|---|---|---|---|---|---|")
    for target in [*sorted({r["target"] for r in results}), "all"]:
        rows = [r for r in results if target in ("all", r["target"])]
        equivalent = sum(r["outcome"] == "equivalent" for r in rows)
        survived = sum(r["outcome"] == "survived" for r in rows)
        killed = len(rows) - equivalent - survived
        print(f"| {target} | {len(rows)} | {equivalent} | {killed} | {survived} | "
              f"{100 * killed / max(1, killed + survived):.1f} |")
    equivalents = [r for r in results if r["outcome"] == "equivalent"]
    if equivalents:
        print("\nEquivalent (not run; tools/mutation.py EQUIVALENT):")
        for r in equivalents:
            reason = EQUIVALENT[(r["path"], r["function"], r["original"], r["description"])]
            print(f"- {r['path']}:{r['line']} ({r['function']}): {r['description']}: {reason}")
    survivors = [r for r in results if r["outcome"] == "survived"]
    if survivors:
        print("\nSurvivors:")
        for r in survivors:
            print(f"- {r['path']}:{r['line']}: {r['description']}  (`{r['replacement']}`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
