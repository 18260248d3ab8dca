"""The umbrella chart's ``dra`` option: a DeviceClass selecting the DRA driver, none by
default, and names the API server would refuse are refused at install."""

from __future__ import annotations

from pathlib import Path

from hami_e2e.charts.helm import Helm


def test_device_class_only_with_the_dra_option(helm: Helm, charts: dict[str, Path]) -> None:
    assert not [d for d in helm.template(charts["hami"]) if d["kind"] == "DeviceClass"]
    docs = helm.template(charts["hami"], {"dra": {"enabled": True, "driverName": "gpu.example.io"}})
    (dc,) = [d for d in docs if d["kind"] == "DeviceClass"]
    assert dc["apiVersion"] == "resource.k8s.io/v1"
    assert dc["metadata"]["name"] == "gpu.hami.io"
    assert dc["spec"]["selectors"] == [{"cel": {"expression": 'device.driver == "gpu.example.io"'}}]


def test_a_bad_driver_name_is_refused(helm: Helm, charts: dict[str, Path]) -> None:
    err = helm.template_error(charts["hami"], {"dra": {"enabled": True, "driverName": "GPU X"}})
    assert "driverName" in err
