import pytest
from hami_common.k8s.resources import LEASES, NODES, PODS, Resource


def test_core_and_group_paths() -> None:
    assert PODS.path("ns") == "/api/v1/namespaces/ns/pods"
    assert PODS.path("ns", "p", "binding") == "/api/v1/namespaces/ns/pods/p/binding"
    assert PODS.path() == "/api/v1/pods"  # all namespaces
    assert NODES.path(name="n1") == "/api/v1/nodes/n1"
    assert LEASES.path("kube-system", "x") == (
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/x"
    )


def test_names_are_escaped() -> None:
    assert (
        Resource("v1", "configmaps").path("ns", "a/b") == "/api/v1/namespaces/ns/configmaps/a%2Fb"
    )


def test_scope_mistakes_are_errors() -> None:
    with pytest.raises(ValueError, match="cluster-scoped"):
        NODES.path("ns")
    with pytest.raises(ValueError, match="namespaced"):
        PODS.path(name="p")
    with pytest.raises(ValueError, match="subresource"):
        PODS.path("ns", subresource="status")
