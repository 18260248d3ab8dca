"""ServiceSettings: CLI > env > file > default, strict keys and ranges, errors naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

import pytest
from hami_common.settings import ServiceSettings, SettingsError
from pydantic import Field


class DemoSettings(ServiceSettings):
    """Demo service."""

    env_prefix: ClassVar[str] = "DEMO_"
    port: Annotated[int, Field(ge=1, le=65535)] = 8443
    scheduler_name: str = "hami-scheduler"
    force: bool = True
    cert_file: Path | None = None
    names: list[str] = Field(default_factory=list)


def test_defaults_when_no_source_is_given() -> None:
    s = DemoSettings.load([], {})
    assert (s.port, s.scheduler_name, s.force, s.cert_file, s.names) == (
        8443,
        "hami-scheduler",
        True,
        None,
        [],
    )


def test_cli_beats_env_beats_file(tmp_path: Path) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text("port: 1000\nscheduler_name: from-file\nforce: false\n")
    env = {"DEMO_PORT": "2000", "DEMO_CONFIG_FILE": str(cfg)}
    s = DemoSettings.load(["--port", "3000"], env)
    assert (s.port, s.scheduler_name, s.force) == (3000, "from-file", False)
    assert DemoSettings.load([], env).port == 2000
    assert DemoSettings.load(["--config-file", str(cfg)], {}).port == 1000


def test_json_file_and_cli_config_file_beat_env_config_file(tmp_path: Path) -> None:
    yaml_cfg = tmp_path / "a.yaml"
    yaml_cfg.write_text("port: 1111\n")
    json_cfg = tmp_path / "b.json"
    json_cfg.write_text('{"port": 2222}')
    s = DemoSettings.load(["--config-file", str(json_cfg)], {"DEMO_CONFIG_FILE": str(yaml_cfg)})
    assert s.port == 2222


def test_booleans_and_lists_from_cli_and_env() -> None:
    assert DemoSettings.load(["--no-force"], {"DEMO_FORCE": "true"}).force is False
    assert DemoSettings.load([], {"DEMO_FORCE": "False"}).force is False
    assert DemoSettings.load([], {"DEMO_NAMES": "a, b,,c"}).names == ["a", "b", "c"]
    assert DemoSettings.load(["--names", "x"], {}).names == ["x"]


def test_out_of_range_value_names_the_key_and_its_source() -> None:
    with pytest.raises(SettingsError) as err:
        DemoSettings.load([], {"DEMO_PORT": "70000"})
    assert err.value.problems == [
        "port (env DEMO_PORT): Input should be less than or equal to 65535; got '70000'"
    ]
    with pytest.raises(SettingsError, match=r"port \(command line --port\)"):
        DemoSettings.load(["--port", "zero"], {})


def test_unknown_env_key_is_an_error_but_service_links_are_not() -> None:
    with pytest.raises(SettingsError, match="env DEMO_PROT: unknown setting; known: DEMO_PORT"):
        DemoSettings.load([], {"DEMO_PROT": "1"})
    links = {
        "DEMO_SERVICE_HOST": "10.0.0.1",
        "DEMO_SERVICE_PORT": "443",
        "DEMO_SERVICE_PORT_HTTPS": "443",
        "DEMO_PORT": "tcp://10.0.0.1:443",
        "DEMO_PORT_443_TCP_ADDR": "10.0.0.1",
        "OTHER_THING": "x",
    }
    assert DemoSettings.load([], links).port == 8443


def test_unknown_file_key_and_unknown_flag_are_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text("prot: 1\n")
    with pytest.raises(SettingsError, match=rf"file {cfg}: unknown setting 'prot'"):
        DemoSettings.load(["--config-file", str(cfg)], {})
    with pytest.raises(SettingsError, match="unrecognized arguments: --prot"):
        DemoSettings.load(["--prot", "1"], {})


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "port: [1\n", "not valid YAML"),
        ("bad.json", "{", "not valid JSON"),
        ("list.yaml", "- 1\n", "must be a mapping"),
    ],
)
def test_broken_files_are_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    cfg = tmp_path / name
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=message):
        DemoSettings.load(["--config-file", str(cfg)], {})


def test_missing_file_says_which_flag_to_fix(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"cannot read it.*fix --config-file"):
        DemoSettings.load(["--config-file", str(tmp_path / "nope.yaml")], {})


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("")
    assert DemoSettings.load(["--config-file", str(cfg)], {}).port == 8443


def test_settings_are_frozen_and_the_cli_help_names_env_variables() -> None:
    s = DemoSettings.load([], {})
    with pytest.raises(ValueError, match="frozen"):
        s.port = 1  # type: ignore[misc]
    help_text = DemoSettings.arg_parser("demo").format_help()
    assert "--cert-file" in help_text
    assert "DEMO_CERT_FILE" in help_text


class RequiredSettings(ServiceSettings):
    """Needs a node."""

    env_prefix: ClassVar[str] = "REQ_"
    node_name: str = Field(description="this node")
    plugin_dir: Path = Field(default=Path("/var/lib/x"), description="the folder")
    mode: Literal["a", "b"] = Field(default="a", description="the mode")
    ratio: float = Field(default=0.5, description="100% means all")


def test_help_renders_required_fields_defaults_and_choices_for_people() -> None:
    help_text = " ".join(RequiredSettings.arg_parser("req").format_help().split())
    assert "PydanticUndefined" not in help_text
    assert "PosixPath" not in help_text
    assert "--node-name VALUE this node (env REQ_NODE_NAME; required)" in help_text
    assert "--plugin-dir PATH the folder (env REQ_PLUGIN_DIR; default: /var/lib/x)" in help_text
    assert "--mode {a,b} the mode (env REQ_MODE; default: a)" in help_text
    assert "100% means all" in help_text
    demo = " ".join(DemoSettings.arg_parser("demo").format_help().split())
    assert "(env DEMO_FORCE; default: on)" in demo
    assert "(env DEMO_CERT_FILE; default: none)" in demo
    assert "(env DEMO_NAMES; default: empty)" in demo


def test_a_missing_required_setting_names_its_flag_env_and_file_key() -> None:
    with pytest.raises(SettingsError) as caught:
        RequiredSettings.load([], {})
    assert caught.value.problems == [
        "--node-name is required (or env REQ_NODE_NAME, or 'node_name' in the --config-file file)"
    ]


def test_version_flag_prints_the_program_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        RequiredSettings.load(["--version"], {}, prog="req", version="1.2.3")
    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == "req 1.2.3"
    with pytest.raises(SettingsError, match="unrecognized arguments: --version"):
        RequiredSettings.load(["--version"], {}, prog="req")  # no version given: no flag
