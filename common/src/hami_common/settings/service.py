"""A typed settings base for every service: CLI > env > file > default.

A service declares its settings as a frozen pydantic model::

    class WebhookSettings(ServiceSettings):
        env_prefix: ClassVar[str] = "HAMI_WEBHOOK_"
        port: Annotated[int, Field(ge=1, le=65535)] = 8443

and loads them with ``WebhookSettings.load(argv, environ)``. Sources, highest first:

1. **CLI**: ``--port 9443``; every field ``snake_name`` is the flag ``--snake-name``. Booleans are
   ``--flag`` / ``--no-flag``; list fields take a comma-separated value.
2. **env**: ``HAMI_WEBHOOK_PORT=9443`` (prefix + upper-case field name); lists are comma-separated.
3. **file**: a YAML or JSON mapping (``.json`` parsed as JSON, anything else as YAML) whose keys are
   the field names, given by ``--config-file`` or ``<PREFIX>CONFIG_FILE``.
4. the field's default.

Unknown keys in any source and values that fail validation are errors (`SettingsError`) that name
the key and where it came from. Kubernetes service-link variables (``<SVC>_SERVICE_HOST``,
``<SVC>_PORT_443_TCP``, and ``<SVC>_PORT=tcp://...``) that happen to share the prefix are ignored,
so a Service named like the prefix cannot break start-up; pods should still set
``enableServiceLinks: false``.
"""

from __future__ import annotations

import argparse
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NoReturn, Self

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from hami_common.settings.errors import SettingsError

_SERVICE_LINK = re.compile(r"^(SERVICE_HOST|SERVICE_PORT(_.*)?|PORT_\d+_(TCP|UDP|SCTP)(_.*)?)$")
_SERVICE_LINK_VALUE = re.compile(r"^(tcp|udp|sctp)://", re.IGNORECASE)
CONFIG_FILE = "config_file"


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so errors reach the caller as SettingsError."""

    def error(self, message: str) -> NoReturn:
        raise SettingsError([f"command line: {message}"])


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_list(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation) if a is not type(None))
    return origin in (list, tuple, set, frozenset)


def _is_bool(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_bool(typing.get_args(annotation)[0])
    return annotation is bool


def _literal_choices(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _literal_choices(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return list(typing.get_args(annotation))
    return []


def _metavar(annotation: Any) -> str:
    """``{a,b}`` for a choice, ``PATH`` for a path, ``A,B`` for a list, else ``VALUE``."""
    choices = _literal_choices(annotation)
    if choices:
        return "{" + ",".join(str(c) for c in choices) + "}"
    if _is_list(annotation):
        return "A,B"
    args = typing.get_args(annotation) if typing.get_origin(annotation) else (annotation,)
    return "PATH" if Path in args else "VALUE"


def _default_text(info: Any) -> str:
    """How `--help` shows a field's default: required, none, on/off, or the value as typed."""
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "default: none"
    if isinstance(value, bool):
        return f"default: {'on' if value else 'off'}"
    if isinstance(value, (list, tuple, set, frozenset)):
        return f"default: {','.join(map(str, value)) or 'empty'}"
    if value == "":
        return "default: empty"
    return f"default: {value}".replace("%", "%%")


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class ServiceSettings(BaseModel):
    """Base class: frozen, unknown keys forbidden, defaults validated too."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # The env prefix of a service, e.g. "HAMI_WEBHOOK_". Subclasses set it.
    env_prefix: ClassVar[str] = "HAMI_"

    @classmethod
    def flag(cls, field: str) -> str:
        """The CLI flag of a field: ``cert_file`` -> ``--cert-file``."""
        return "--" + field.replace("_", "-")

    @classmethod
    def env_name(cls, field: str) -> str:
        """The env variable of a field: ``cert_file`` -> ``HAMI_WEBHOOK_CERT_FILE``."""
        return cls.env_prefix + field.upper()

    @classmethod
    def arg_parser(
        cls, prog: str | None = None, version: str | None = None
    ) -> argparse.ArgumentParser:
        """The CLI of these settings; every option defaults to 'not given'. With `version`,
        ``--version`` prints ``<prog> <version>`` and exits."""
        parser = _Parser(
            prog=prog, description=cls.__doc__, argument_default=argparse.SUPPRESS,
            epilog=f"Sources, highest first: command line, env {cls.env_prefix}*, "
            f"{cls.flag(CONFIG_FILE)}, default. Lists are comma-separated.",
        )  # fmt: skip
        if version is not None:
            parser.add_argument(
                "--version", action="version", version=f"{prog or parser.prog} {version}",
                help="print the version and exit",
            )  # fmt: skip
        parser.add_argument(
            cls.flag(CONFIG_FILE), dest=CONFIG_FILE, metavar="PATH",
            help=f"YAML or JSON settings file (env {cls.env_name(CONFIG_FILE)})",
        )  # fmt: skip
        for name, info in cls.model_fields.items():
            about = (info.description or "").replace("%", "%%")
            help_text = f"{about} (env {cls.env_name(name)}; {_default_text(info)})".lstrip()
            if _is_bool(info.annotation):
                parser.add_argument(
                    cls.flag(name), dest=name, action=argparse.BooleanOptionalAction, help=help_text
                )
            else:
                parser.add_argument(
                    cls.flag(name), dest=name, metavar=_metavar(info.annotation), help=help_text
                )
        return parser

    @classmethod
    def load(
        cls,
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        prog: str | None = None,
        version: str | None = None,
    ) -> Self:
        """Load from the command line, the environment and the settings file, in that order.

        `argv` excludes the program name; None means no CLI arguments (not ``sys.argv``), so that
        callers are explicit. `environ` None means an empty environment, for the same reason.
        ``--help`` (and ``--version`` when `version` is given) print and raise `SystemExit(0)`.
        """
        cli = vars(cls.arg_parser(prog, version).parse_args(list(argv or [])))
        env_values, config_path_env, problems = cls._from_env(environ or {})
        config_path = cli.pop(CONFIG_FILE, None) or config_path_env
        cli = {k: cls._coerce_text(k, v) if isinstance(v, str) else v for k, v in cli.items()}
        file_values: dict[str, Any] = {}
        if config_path:
            file_values, file_problems = cls._from_file(Path(config_path))
            problems += file_problems
        if problems:
            raise SettingsError(problems)

        merged: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for values, source in ((file_values, "file"), (env_values, "env"), (cli, "cli")):
            for key, value in values.items():
                merged[key] = value
                sources[key] = {
                    "file": f"{key} (file {config_path})",
                    "env": f"{key} (env {cls.env_name(key)})",
                    "cli": f"{key} (command line {cls.flag(key)})",
                }[source]
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            raise SettingsError(
                [cls._describe(err, sources) for err in exc.errors(include_url=False)]
            ) from None

    @classmethod
    def _coerce_text(cls, name: str, value: str) -> Any:
        return _split(value) if _is_list(cls.model_fields[name].annotation) else value

    @classmethod
    def _from_env(cls, environ: Mapping[str, str]) -> tuple[dict[str, Any], str | None, list[str]]:
        values: dict[str, Any] = {}
        problems: list[str] = []
        config_path: str | None = None
        for key, raw in sorted(environ.items()):
            if not key.startswith(cls.env_prefix):
                continue
            rest = key[len(cls.env_prefix) :]
            name = rest.lower()
            if name == CONFIG_FILE:
                config_path = raw
            elif name in cls.model_fields:
                if rest == "PORT" and _SERVICE_LINK_VALUE.match(raw):
                    continue  # Kubernetes service link, not ours
                values[name] = cls._coerce_text(name, raw)
            elif not _SERVICE_LINK.match(rest):
                problems.append(f"env {key}: unknown setting; known: {cls._known(cls.env_name)}")
        for name, value in list(values.items()):
            if _is_bool(cls.model_fields[name].annotation) and isinstance(value, str):
                values[name] = value.strip().lower()
        return values, config_path, problems

    @classmethod
    def _from_file(cls, path: Path) -> tuple[dict[str, Any], list[str]]:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return {}, [f"file {path}: cannot read it ({exc}); fix {cls.flag(CONFIG_FILE)}"]
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            return {}, [
                f"file {path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
            ]
        if data is None:
            return {}, []
        if not isinstance(data, dict):
            return {}, [f"file {path}: must be a mapping of setting names to values"]
        problems = [
            f"file {path}: unknown setting {key!r}; known: {cls._known(str)}"
            for key in data
            if key not in cls.model_fields
        ]
        return {k: v for k, v in data.items() if k in cls.model_fields}, problems

    @classmethod
    def _known(cls, spell: Any) -> str:
        return ", ".join(spell(name) for name in cls.model_fields)

    @classmethod
    def _describe(cls, err: Any, sources: Mapping[str, str]) -> str:
        loc = [str(part) for part in err["loc"]]
        head = loc[0] if loc else ""
        if err.get("type") == "missing" and len(loc) == 1 and head in cls.model_fields:
            return (
                f"{cls.flag(head)} is required (or env {cls.env_name(head)}, "
                f"or {head!r} in the {cls.flag(CONFIG_FILE)} file)"
            )
        where = sources.get(head, f"{head} (default)") if head else "settings"
        inner = ".".join(loc[1:])
        got = f"; got {err['input']!r}" if head in sources else ""
        return f"{where}{'.' + inner if inner else ''}: {err['msg']}{got}"
