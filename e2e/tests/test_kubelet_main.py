"""``python -m hami_e2e.kubelet``'s command line: what cannot go together is refused before
anything starts, naming the flags."""

from __future__ import annotations

import pytest
from hami_e2e.kubelet.__main__ import main


@pytest.mark.parametrize(("extra", "said"), [
    (["--dra", "--run-containers"], "--run-containers runs what the device plugin's Allocate"),
    (["--node", "n2"], "give one --plugin-dir per --node"),
])  # fmt: skip
def test_conflicting_flags_are_refused(
    capsys: pytest.CaptureFixture[str], extra: list[str], said: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--kubeconfig", "k", "--node", "n", "--plugin-dir", "d", *extra])
    assert exited.value.code == 2
    assert said in capsys.readouterr().err
