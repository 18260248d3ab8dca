#!/usr/bin/env python3
"""Sum the 'FLAVOUR: N passed, N failed' lines of run_tests.py logs (stdin) into one line."""

import re
import sys

passed = failed = 0
for line in sys.stdin:
    m = re.match(r"^\w+: (\d+) passed, (\d+) failed$", line.strip())
    if m:
        passed += int(m.group(1))
        failed += int(m.group(2))
print(f"hook: {passed} passed, {failed} failed")
