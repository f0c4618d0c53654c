"""Fail CI unless the protocol and validation code is covered: section 1 (Protocol) of s2s_server.py and all
of s2s_config.py, by statements and branches together (coverage.py's own formula), at least MIN_PERCENT.

    python .ci/coverage_gate.py coverage.json      # coverage.json from: pytest --cov --cov-report=json:...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MIN_PERCENT = 95.0
ROOT = Path(__file__).resolve().parent.parent


def section_lines(path: Path, banner: str) -> range:
    """Lines of the section that starts with `banner`, up to the next `# ==== ` banner."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines, 1) if line.startswith(banner))
    end = next((i for i, line in enumerate(lines, 1) if i > start and line.startswith("# ==== ")), len(lines) + 1)
    return range(start, end)


def covered(files: dict, name: str, lines: range | None) -> tuple[int, int, list[str]]:
    """(covered, total) statements plus branches of `name` within `lines`, and what is missed."""
    data = files[name]
    inside = (lambda n: True) if lines is None else (lambda n: n in lines)
    run = [n for n in data["executed_lines"] if inside(n)]
    missed = [n for n in data["missing_lines"] if inside(n)]
    run_branches = [b for b in data.get("executed_branches", []) if inside(b[0])]
    missed_branches = [b for b in data.get("missing_branches", []) if inside(b[0])]
    misses = [f"{name}:{n}" for n in missed] + [f"{name}:{a}->{b}" for a, b in missed_branches]
    return len(run) + len(run_branches), len(run) + len(missed) + len(run_branches) + len(missed_branches), misses


def main() -> None:
    files = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))["files"]
    targets = [("s2s_server.py", section_lines(ROOT / "s2s_server.py", "# ==== 1. Protocol"), "section 1, Protocol"),
               ("s2s_config.py", None, "the whole file")]
    total_hit = total_all = 0
    for name, lines, what in targets:
        hit, all_, misses = covered(files, name, lines)
        total_hit, total_all = total_hit + hit, total_all + all_
        print(f"coverage of {name} ({what}): {100 * hit / all_:.1f} % of {all_} statements and branches"
              + (f"; missed: {', '.join(misses)}" if misses else ""))
    percent = 100 * total_hit / total_all
    print(f"protocol and validation coverage: {percent:.1f} % (at least {MIN_PERCENT:g} % required)")
    if percent < MIN_PERCENT:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
