"""Run the C++ reference cases through the batched JAX evaluator (float64).

  python tools/check_cpp_cases_jax.py              # all 300 cases (~2-3 s each on 2 cores)
  python tools/check_cpp_cases_jax.py --limit=24

Each case has its own data shape, so each is one compilation (with only the
ops that case uses). The last line is 'N passed, M failed'. The test suite runs
a fixed slice of these (tests/test_cpp_reference_cases.py). The cases are read
from tests/data/cpp_reference_cases.tar.xz by the tests' loader, tests/cpp_cases.py.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import cpp_cases  # noqa: E402

_LIMIT = flags.DEFINE_integer("limit", 0, "check only the first N cases (0 = all)")
_IDS = flags.DEFINE_list("ids", [], "check only these case ids")


def main(argv: list[str]) -> None:
    del argv
    manifest = cpp_cases.load_manifest()
    cases = manifest["cases"]
    if _IDS.value:
        cases = [c for c in cases if c["id"] in set(_IDS.value)]
    if _LIMIT.value:
        cases = cases[:_LIMIT.value]
    start, failed = time.perf_counter(), 0
    for case in cases:
        problems = cpp_cases.jax_mismatches(manifest, case)
        if problems:
            failed += 1
            print(f"FAIL {case['id']} ({case['family']}): " + "; ".join(problems))
    print(f"checked {len(cases)} cases in {time.perf_counter() - start:.1f} s")
    print(f"{len(cases) - failed} passed, {failed} failed")


if __name__ == "__main__":
    app.run(main)
