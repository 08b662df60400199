"""List the longest functions in the package (lines from `def` to the last line of the body).

Used to track issue 12's "one stage, one module" moves: run before and after a move.

    python bench/longest_functions.py [--top 15] [PATH ...]   # default PATH: src/flaqum
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def function_lengths(paths: list[Path]) -> list[tuple[int, str, str]]:
    """(length in lines, "file:line", qualified name) of every function and method."""
    rows: list[tuple[int, str, str]] = []
    for root in paths:
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for file in files:
            tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))

            def visit(node: ast.AST, prefix: str, file: Path = file) -> None:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                        name = f"{prefix}{child.name}"
                        length = (child.end_lineno or child.lineno) - child.lineno + 1
                        rows.append((length, f"{file}:{child.lineno}", name))
                        visit(child, f"{name}.")
                    elif isinstance(child, ast.ClassDef):
                        visit(child, f"{prefix}{child.name}.")

            visit(tree, "")
    return sorted(rows, key=lambda r: (-r[0], r[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("src/flaqum")])
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    for length, where, name in function_lengths(args.paths)[: args.top]:
        print(f"{length:5d}  {name}  ({where})")


if __name__ == "__main__":
    main()
