"""Every function in the given files (or the ``.py`` files under the given directories) is at
most 60 lines and every class at most 300, counted by ``ast`` (``end_lineno - lineno + 1``,
decorators not included; nested functions count on their own too).

    python scripts/check_sizes.py scripts      # what scripts/test runs
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LIMITS = {ast.FunctionDef: 60, ast.AsyncFunctionDef: 60, ast.ClassDef: 300}


def too_long(path: Path) -> list[str]:
    """``path:line name: N lines > LIMIT`` for every definition in ``path`` over its limit."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        limit = LIMITS.get(type(node))
        if limit is None:
            continue
        assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        assert node.end_lineno is not None
        size = node.end_lineno - node.lineno + 1
        if size > limit:
            out.append(f"{path}:{node.lineno} {node.name}: {size} lines > {limit}")
    return out


def main(argv: list[str]) -> int:
    paths = [p for a in argv for p in ([Path(a)] if a.endswith(".py") else Path(a).rglob("*.py"))]
    problems = [line for p in sorted(paths) for line in too_long(p)]
    if problems:
        print("\n".join(problems))
        return 1
    print(f"{len(paths)} files: no function over 60 lines, no class over 300")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
