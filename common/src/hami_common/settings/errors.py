"""The one error type of the settings package."""

from __future__ import annotations


class SettingsError(ValueError):
    """Settings could not be loaded. The message names every offending key and its source.

    `problems` holds one line per problem, so a caller (or a test) can inspect them one by one.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))
