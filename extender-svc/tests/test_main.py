"""``python -m hami_extender``: bad settings are one line naming the key, and exit status 2."""

from __future__ import annotations

import pytest
from hami_extender.__main__ import main


def test_bad_settings_exit_2_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lock-wait-seconds", "99"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hami-extender: ")
    assert "lock_wait_seconds (command line --lock-wait-seconds)" in err
