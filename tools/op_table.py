"""Print the op table as the Markdown table in README.md ("Ops").

  python tools/op_table.py > /tmp/ops.md
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azero_jax import ops  # noqa: E402


def markdown_table() -> str:
    rows = ["| id | name | in1 | in2 | out | constants | printed as | cost |", "|---|---|---|---|---|---|---|---|"]
    for op in ops.OPS:
        printed = op.printed.format(o="o", a=f"{op.in1 or ''}A", b=f"{op.in2 or ''}B", d="d", f0="f0", f1="f1",
                                    f2="f2")
        if op.out:
            printed = printed.replace("o =", f"{op.out}O =", 1).replace("o[", f"{op.out}O[", 1)
        consts = ", ".join(op.consts) or "–"
        rows.append(f"| {op.id} | {op.name} | {op.in1 or '–'} | {op.in2 or '–'} | {op.out or '–'} | {consts} | "
                    f"`{printed}` | {op.cost} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
