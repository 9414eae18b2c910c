"""Issue #14: every `trialwatch` process (a command or the daemon) raises the cyclic collector's
first threshold before it does any work (see watcher.__main__.GC_THRESHOLD); checked in a fresh
interpreter, against the interpreter's own default."""

from __future__ import annotations

import subprocess
import sys

from watcher.__main__ import GC_THRESHOLD


def threshold_after(code: str) -> tuple[int, ...]:
    probe = f"{code}\nimport gc\nprint(*gc.get_threshold())"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return tuple(int(n) for n in done.stdout.split()[-3:])


def test_a_trialwatch_process_collects_cycles_less_often_than_the_interpreter_would():
    default = threshold_after("")
    assert default[0] < GC_THRESHOLD[0]
    for argv in (["--help"], ["version"]):
        code = f"import sys\nfrom watcher.__main__ import main\nsys.argv = ['trialwatch', *{argv!r}]\n"
        code += "try:\n    main()\nexcept SystemExit:\n    pass"
        assert threshold_after(code) == GC_THRESHOLD, argv
