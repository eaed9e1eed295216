"""GPU, link, cluster and model presets: they load, every hardware number has a source."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml

from topology import hardware
from topology.cluster import build_cluster, cluster_from_dict, cluster_names, load_cluster
from topology.datafile import load_preset, preset_names, sourced_value
from topology.errors import LayerwiseError
from topology.hardware import GPUSpec, LinkSpec, gpu_names, load_gpu, load_link, load_links
from topology.model import ModelSpec, load_model, model_from_dict, model_names


def test_gpu_presets_load() -> None:
    assert {"h100-sxm", "h200-sxm"} <= set(gpu_names())
    h100 = load_gpu("h100-sxm")
    assert h100.dense_bf16_flops_per_s == pytest.approx(989.4e12)
    assert h100.hbm_bw_bytes_per_s == pytest.approx(3.35e12)
    assert h100.l2_capacity_bytes == 50 * 2**20
    assert h100.sm_count == 132
    assert h100.smem_per_sm_bytes == 228 * 1024
    assert h100.sram_bytes == 132 * 228 * 1024  # ~30 MB of shared memory, not the seed's "3 MB"
    assert h100.l2_usable_bytes == int(50 * 2**20 * h100.l2_usable_fraction)
    assert 75e9 < h100.hbm_capacity_bytes < 90e9
    h200 = load_gpu("h200-sxm")
    assert h200.hbm_bw_bytes_per_s == pytest.approx(4.8e12)
    assert h200.l2_capacity_bytes == 60 * 2**20
    assert 140e9 < h200.hbm_capacity_bytes < 155e9


def _sourced_entries(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in ("name", "description", "device_name_contains")}  # text


@pytest.mark.parametrize("name", gpu_names())
def test_every_gpu_number_has_a_source(name: str) -> None:
    raw = load_preset("gpus", name)
    entries = _sourced_entries(raw)
    fields = set(GPUSpec.__dataclass_fields__) - {"name"}
    assert set(entries) == fields  # every spec field comes from the file, nothing else is there
    for key, entry in entries.items():
        assert isinstance(entry, dict) and set(entry) == {"value", "source"}, key
        assert str(entry["source"]).strip(), key
        float(entry["value"])


def test_every_link_number_has_a_source() -> None:
    raw = yaml.safe_load(resources.files("topology.data").joinpath("links.yaml").read_text())
    assert {"nvlink4", "ib-ndr-400", "nvlink-network"} <= set(raw)
    for name, link in raw.items():
        for key, entry in _sourced_entries(link).items():
            assert isinstance(entry, dict) and str(entry.get("source", "")).strip(), f"{name}.{key}"
    assert load_link("nvlink4").bw_bytes_per_s_per_direction == pytest.approx(450e9)
    assert load_link("ib-ndr-400").bw_bytes_per_s_per_direction == pytest.approx(400e9 / 8)
    assert set(load_links()) == set(raw)


@pytest.mark.parametrize(("entry", "message"), [
    ({"value": 1.0}, "has no source"),
    ({"value": 1.0, "source": "  "}, "has no source"),
    (2.0, "missing; expected {value: ..., source: ...}"),
    ({"value": "fast", "source": "a datasheet"}, "value 'fast' is not a number"),
    ({"value": True, "source": "a datasheet"}, "value True is not a number"),
    ({"value": None, "source": "a datasheet"}, "is not a number"),
])
def test_sourced_value_rejects(entry: Any, message: str) -> None:
    with pytest.raises(LayerwiseError) as info:
        sourced_value({"hbm_bw_bytes_per_s": entry}, "hbm_bw_bytes_per_s", "gpus/x")
    assert info.value.field == "gpus/x.hbm_bw_bytes_per_s"
    assert message in info.value.message


def test_sourced_value_reads_yaml_exponent_strings() -> None:
    raw = yaml.safe_load("x: {value: 989.4e12, source: s}")
    assert sourced_value(raw, "x", "o") == pytest.approx(989.4e12)


@pytest.mark.parametrize(("key", "entry", "message"), [
    ("l2_capacity_bytes", {"value": 52428800}, "has no source"),
    ("sm_count", {"value": "many", "source": "datasheet"}, "is not a number"),
])
def test_gpu_loader_names_the_bad_field(monkeypatch: pytest.MonkeyPatch, key: str, entry: Any,
                                        message: str) -> None:
    raw = load_preset("gpus", "h100-sxm")
    raw[key] = entry
    monkeypatch.setattr(hardware, "load_preset", lambda kind, name: raw)
    with pytest.raises(LayerwiseError) as info:
        hardware.load_gpu.__wrapped__("broken")
    assert info.value.field == f"gpus/broken.{key}"
    assert message in info.value.message


def test_gpu_spec_rejects_nonpositive() -> None:
    spec = load_gpu("h100-sxm")
    values = {f: getattr(spec, f) for f in GPUSpec.__dataclass_fields__}
    with pytest.raises(LayerwiseError, match=r"gpu\.hbm_bw_bytes_per_s"):
        GPUSpec(**{**values, "hbm_bw_bytes_per_s": 0.0})
    with pytest.raises(LayerwiseError, match=r"gpu\.l2_usable_fraction"):
        GPUSpec(**{**values, "l2_usable_fraction": 1.5})


def test_unknown_presets_list_the_known() -> None:
    with pytest.raises(LayerwiseError, match=r"unknown preset .b200.*h100-sxm"):
        load_gpu("b200")
    with pytest.raises(LayerwiseError, match="unknown link kind 'pcie3'"):
        load_link("pcie3")
    with pytest.raises(LayerwiseError, match="unknown preset"):
        load_cluster("nope")


def test_cluster_presets() -> None:
    names = set(cluster_names())
    assert {"seed-16xh100", "seed-16xh100-nvl16", "h100x1", "h100x2", "h100x4", "h100x8",
            "h200x1", "h200x2", "h200x4", "h200x8"} <= names
    for name in names:
        cluster = load_cluster(name)
        gpus = [n for n, data in cluster.graph.nodes(data=True) if data["kind"] == "gpu"]
        assert len(gpus) == cluster.num_devices == len(cluster.devices)
    for count in (1, 2, 4, 8):
        assert load_cluster(f"h200x{count}").num_devices == count
        assert load_cluster(f"h100x{count}").gpu.name == load_gpu("h100-sxm").name


def test_seed_cluster_routes() -> None:
    cluster = load_cluster("seed-16xh100")
    assert (cluster.num_nodes, cluster.gpus_per_node, cluster.num_devices) == (2, 8, 16)
    assert cluster.route("gpu0", "gpu7") == (("gpu0", "nvswitch0"), ("nvswitch0", "gpu7"))
    assert [link.name for link in cluster.route_links("gpu0", "gpu7")] == ["nvlink4", "nvlink4"]
    assert cluster.route("gpu9", "gpu15") == (("gpu9", "nvswitch1"), ("nvswitch1", "gpu15"))
    assert cluster.route("gpu7", "gpu8") == (("gpu7", "network"), ("network", "gpu8"))
    assert [link.name for link in cluster.route_links("gpu0", "gpu8")] == ["ib-ndr-400"] * 2
    assert cluster.route("gpu3", "gpu3") == ()
    assert cluster.node_of("gpu8") == 1
    assert cluster.same_node(("gpu0", "gpu7")) and not cluster.same_node(("gpu7", "gpu8"))
    with pytest.raises(LayerwiseError, match="not a GPU"):
        cluster.node_of("nvswitch0")


def test_seed_cluster_16_gpu_nvlink_domain() -> None:
    cluster = load_cluster("seed-16xh100-nvl16")
    assert (cluster.num_nodes, cluster.gpus_per_node) == (1, 16)
    assert cluster.inter_node_link is None
    assert [link.name for link in cluster.route_links("gpu0", "gpu15")] == ["nvlink-network"] * 2
    assert "network" not in cluster.graph
    assert cluster.same_node(cluster.devices)


def test_cluster_from_dict_errors() -> None:
    base = {"nodes": 2, "gpus_per_node": 4, "gpu": "h100-sxm", "intra_node_link": "nvlink4"}
    with pytest.raises(LayerwiseError) as info:
        cluster_from_dict(base)
    assert info.value.field == "cluster.inter_node_link"
    with pytest.raises(LayerwiseError) as info:
        cluster_from_dict({**base, "nodes": 1, "gpus_per_node": 0})
    assert info.value.field == "cluster.gpus_per_node"
    with pytest.raises(LayerwiseError) as info:
        cluster_from_dict({**base, "nodes": "two"})
    assert info.value.field == "cluster.nodes"
    with pytest.raises(LayerwiseError) as info:
        cluster_from_dict({**base, "colour": "green"})
    assert "unknown field 'colour'" in info.value.message
    with pytest.raises(LayerwiseError) as info:
        cluster_from_dict({k: v for k, v in base.items() if k != "gpu"})
    assert info.value.field == "cluster.gpu"


def test_build_cluster_single_node_has_no_network() -> None:
    cluster = build_cluster("one", 1, 2, load_gpu("h100-sxm"), load_link("nvlink4"), load_link("ib-ndr-400"))
    assert cluster.inter_node_link is None
    assert cluster.to_dict()["inter_node_link"] is None


def test_model_presets() -> None:
    assert {"seed-dense-16", "seed-1p875b-16", "llama3-8b", "llama3-70b", "tiny-test"} <= set(model_names())
    for name in model_names():
        raw = load_preset("models", name)
        assert str(raw.get("source", "")).strip(), name
        assert load_model(name).name == name
    llama = load_model("llama3-8b")
    assert llama.layer_params_total == pytest.approx(6.98e9, rel=0.01)  # 8B minus embeddings and head
    seed = load_model("seed-dense-16")
    assert (seed.num_layers, seed.hidden_size, seed.num_heads, seed.head_dim, seed.mlp_hidden_size,
            seed.vocab_size, seed.dtype_bytes, seed.gated_mlp) == (16, 4096, 32, 128, 16384, 50257, 2, True)
    assert preset_names("models") == model_names()


def test_model_from_dict_defaults_and_errors() -> None:
    model = model_from_dict({"num_layers": 2, "hidden_size": 64, "num_heads": 4, "mlp_hidden_size": 256})
    assert (model.num_kv_heads, model.head_dim, model.gated_mlp, model.dtype_bytes) == (4, 16, True, 2)
    assert ModelSpec(**{**model.to_dict()}) == model
    cases: list[tuple[dict[str, Any], str]] = [
        ({"hidden_size": 64, "num_heads": 4, "mlp_hidden_size": 256}, "model.num_layers"),
        ({"num_layers": 0, "hidden_size": 64, "num_heads": 4, "mlp_hidden_size": 256}, "model.num_layers"),
        ({"num_layers": 2, "hidden_size": 64, "num_heads": 4, "num_kv_heads": 3, "mlp_hidden_size": 256},
         "model.num_kv_heads"),
        ({"num_layers": 2, "hidden_size": 64, "num_heads": 4, "mlp_hidden_size": 256, "dtype_bytes": 3},
         "model.dtype_bytes"),
        ({"num_layers": 2, "hidden_size": 64, "num_heads": 0, "mlp_hidden_size": 256}, "model.num_heads"),
        ({"num_layers": 2, "hidden_size": 64, "num_heads": 4, "mlp_hidden_size": 256, "gated_mlp": "no"},
         "model.gated_mlp"),
        ({"num_layers": 2, "hidden_size": 64, "num_heads": 4, "mlp_hidden_size": 256, "layers": 3}, "model"),
    ]
    for raw, field in cases:
        with pytest.raises(LayerwiseError) as info:
            model_from_dict(raw)
        assert info.value.field == field, raw


def test_device_names_map_to_gpu_presets() -> None:
    from topology.hardware import gpu_preset_for_device

    assert gpu_preset_for_device("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert gpu_preset_for_device("NVIDIA H200") == "h200-sxm"
    assert gpu_preset_for_device("cpu") is None


@pytest.mark.parametrize("name", ["seed-16xh100", "seed-16xh100-nvl16", "h100x8", "h200x4"])
def test_closed_form_routes_are_the_graphs_cheapest_paths(name: str) -> None:
    """`Cluster.route` (closed form) against a shortest-path search of the cluster graph, every pair."""
    cluster = load_cluster(name)
    for src in cluster.devices:
        for dst in cluster.devices:
            assert cluster.route(src, dst) == cluster.graph_route(src, dst), (src, dst)


def test_closed_form_route_when_the_nic_is_faster_than_the_node_link() -> None:
    """A PCIe-class node link slower than the NIC: the graph's cheapest path leaves through the network."""
    slow = LinkSpec(name="slow", bw_bytes_per_s_per_direction=10e9, latency_s=1e-6)
    fast = LinkSpec(name="fast", bw_bytes_per_s_per_direction=50e9, latency_s=1e-6)
    cluster = build_cluster("odd", 2, 2, load_gpu("h100-sxm"), slow, fast)
    expected = (("gpu0", "network"), ("network", "gpu1"))
    assert cluster.route("gpu0", "gpu1") == expected == cluster.graph_route("gpu0", "gpu1")
    with pytest.raises(LayerwiseError, match="not a GPU"):
        cluster.node_of("gpu4")
