"""Driver for long sweeps of the random-program test, one process, in chunks.

    python tests/sweep_random_programs.py START STOP [LOG]

Checks the programs of seeds START..STOP-1 exactly as
``test_grad_random_programs`` does (same generator, same checks), and prints
one line per failure and a summary: checked, refused at a ``# may refuse``
line, failed.  Failures are appended to LOG (default: sweep_failures.log in
the current directory) with the program's source.  (The same sweep through
pytest: ``KNET_ST_SWEEP=START:STOP python -m pytest -q -m slow
tests/test_grad_random_programs.py``.)
"""

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_grad_random_programs as t  # noqa: E402


def main():
    start, stop = int(sys.argv[1]), int(sys.argv[2])
    log = sys.argv[3] if len(sys.argv) > 3 else "sweep_failures.log"
    counts = {"checked": 0, "refused": 0, "failed": 0}
    began = time.time()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(start, stop):
            try:
                a, b = t.check_program(Path(tmp), seed)
                counts["checked" if a and b else "refused"] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                counts["failed"] += 1
                first = str(exc).splitlines()[0] if str(exc) else ""
                text = t.Program(seed).source()
                print(f"FAIL seed {seed}: {type(exc).__name__}: {first[:300]}", flush=True)
                with open(log, "a") as out:
                    out.write(f"=== seed {seed}: {type(exc).__name__}: {exc}\n{text}\n")
    print(f"seeds {start}:{stop} {counts} in {time.time() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
