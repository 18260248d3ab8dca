from pathlib import Path

from hami_e2e import components as comp
from hami_e2e.pki import cluster_pki


def test_apiserver_runs_with_rbac_and_the_admission_plugins_of_a_real_cluster(
    tmp_path: Path,
) -> None:
    pki = cluster_pki(tmp_path)
    ports = comp.Ports.pick()
    args = comp.apiserver_args(Path("/bin/kube-apiserver"), pki, ports)
    flags = dict(a.removeprefix("--").split("=", 1) for a in args[1:])
    assert flags["authorization-mode"] == "Node,RBAC"
    plugins = flags["enable-admission-plugins"].split(",")
    for plugin in (
        "MutatingAdmissionWebhook",
        "ResourceQuota",
        "ServiceAccount",
        "NodeRestriction",
    ):
        assert plugin in plugins
    assert flags["secure-port"] == str(ports.apiserver)
    assert flags["bind-address"] == "127.0.0.1"


def test_ports_are_distinct() -> None:
    ports = comp.Ports.pick()
    values = list(vars(ports).values())
    assert len(set(values)) == len(values) == 6


def test_scheduler_config_takes_extra_top_level_sections() -> None:
    extender = {"urlPrefix": "http://127.0.0.1:1/", "filterVerb": "filter"}
    cfg = comp.scheduler_config(Path("/k"), {"extenders": [extender]})
    assert cfg["kind"] == "KubeSchedulerConfiguration"
    assert cfg["clientConnection"] == {"kubeconfig": "/k"}
    assert cfg["extenders"] == [extender]


def test_client_rates_are_merged_into_the_client_connection() -> None:
    cfg = comp.scheduler_config(Path("/k"), {"clientConnection": {"qps": 5000, "burst": 5000}})
    assert cfg["clientConnection"] == {"kubeconfig": "/k", "qps": 5000, "burst": 5000}
