"""build_clip: explicit random weights, local files (state dicts, safetensors, TorchScript), fast offline errors."""

from __future__ import annotations

import copy
import hashlib
import json
import socket
import time

import pytest
import torch

from harness.errors import WeightsError
from methods.components import weights
from methods.components.weights import build_clip, network_reachable


@pytest.fixture(scope="module")
def tiny():
    return build_clip("tiny-vit-p16", "random", seed=5)


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_no_weights_is_an_error_never_silently_random():
    with pytest.raises(WeightsError, match="'random' to ask explicitly"):
        build_clip("tiny-vit-p16", None)


def test_random_weights_are_recorded_seeded_and_leave_the_global_rng_alone(tiny):
    model, info = tiny
    assert info.source == "random" and info.seed == 5 and info.sha256 is None
    assert json.loads(json.dumps(info.as_record()))["source"] == "random"
    assert "random" in info.describe()
    state = torch.random.get_rng_state()
    again, _ = build_clip("tiny-vit-p16", "random", seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert same_weights(model, again)
    other, _ = build_clip("tiny-vit-p16", "random", seed=6)
    assert not same_weights(model, other)
    assert not model.training


@pytest.mark.parametrize("fmt", ["state_dict", "wrapped", "safetensors"])
def test_local_checkpoint_files_load_exactly_and_record_their_sha256(tiny, tmp_path, fmt):
    model, _ = tiny
    path = tmp_path / ("clip.safetensors" if fmt == "safetensors" else "clip.pt")
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    else:
        state = model.state_dict()
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}} if fmt == "wrapped" else state, path)
    loaded, info = build_clip("tiny-vit-p16", str(path), seed=99)
    assert same_weights(model, loaded)
    assert info.source == "file" and info.path == str(path.resolve())
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_openai_torchscript_archive_loads_with_quickgelu(tiny, tmp_path):
    model, _ = tiny
    archived = copy.deepcopy(model)
    # OpenAI's archives carry metadata scalars beside the weights (context_length and vocab_size are plain
    # attributes of open_clip's CLIP, so only this one can be registered here).
    archived.register_buffer("input_resolution", torch.tensor(64))
    traced = torch.jit.trace_module(archived, {"encode_image": (torch.randn(1, 3, 64, 64),)}, check_trace=False)
    path = tmp_path / "ViT-tiny.pt"
    traced.save(str(path))
    loaded, info = build_clip("tiny-vit-p16", path, seed=99)
    assert same_weights(model, loaded)
    assert info.quick_gelu is True and info.source == "file"


def test_file_of_another_architecture_is_a_clear_error(tmp_path):
    other, _ = build_clip("tiny-vit-p14", "random")
    path = tmp_path / "p14.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(WeightsError, match="Could not load .* into CLIP 'tiny-vit-p16'"):
        build_clip("tiny-vit-p16", path)


def test_offline_tag_fails_within_a_second_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(weights, "network_reachable", lambda: pytest.fail("must not probe when offline is set"))
    start = time.perf_counter()
    with pytest.raises(WeightsError) as err:
        build_clip("ViT-B-16-quickgelu", "openai", cache_dir=str(tmp_path))
    assert time.perf_counter() - start < 1.0
    message = str(err.value)
    assert "openaipublic.azureedge.net/clip/models/" in message and "ViT-B-16.pt" in message
    assert "huggingface.co/timm/vit_base_patch16_clip_224.openai" in message
    assert "--weights PATH" in message


def test_unreachable_network_gives_the_same_advice(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(weights, "network_reachable", lambda: False)
    with pytest.raises(WeightsError, match="ViT-L-14-336px.pt"):
        build_clip("ViT-L-14-336-quickgelu", "openai", cache_dir=str(tmp_path))


def test_cached_tag_file_is_found_without_network(tmp_path):
    import open_clip

    cfg = open_clip.get_pretrained_cfg("ViT-B-16", "openai")
    assert weights._cached_tag_file(cfg, str(tmp_path)) is None
    (tmp_path / "ViT-B-16.pt").write_bytes(b"placeholder")
    assert weights._cached_tag_file(cfg, str(tmp_path)) == tmp_path / "ViT-B-16.pt"


def test_probe_of_a_closed_port_answers_false_quickly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    assert network_reachable(hosts=(("127.0.0.1", port),), timeout_s=0.5) is False
    assert time.perf_counter() - start < 0.6


@pytest.mark.parametrize(("arch", "pretrained", "match"), [
    ("ViT-B-16-quickgelu", "laion-nonsense", "known tags: openai"),
    ("ViT-B-16-quickgelu", "/no/such/dir/ViT-B-16.pt", "does not exist"),
    ("ViT-Q-99", "random", "Unknown CLIP architecture"),
    ("hf-hub:timm/whatever", "random", "schema prefixes"),
    ("tiny-vit-p16", "openai", "no pretrained tags"),
])
def test_bad_requests_say_what_to_do(arch, pretrained, match):
    with pytest.raises(WeightsError, match=match):
        build_clip(arch, pretrained)


def test_precision_controls_weight_dtypes():
    mixed, _ = build_clip("tiny-vit-p16", "random", precision="bf16")
    assert mixed.visual.conv1.weight.dtype == torch.bfloat16
    assert mixed.visual.ln_post.weight.dtype == torch.float32  # OpenAI-style: LayerNorms stay fp32
    pure, _ = build_clip("tiny-vit-p16", "random", precision="pure_bf16")
    assert {p.dtype for p in pure.parameters()} == {torch.bfloat16}
    with pytest.raises(WeightsError, match="Unknown precision"):
        build_clip("tiny-vit-p16", "random", precision="int8")


def test_relative_weights_path_resolves_from_the_project_root(tmp_path, monkeypatch):
    # Suites name the committed MiniWorld checkpoint relative to the project; it must load from anywhere.
    monkeypatch.chdir(tmp_path)
    path = weights.local_weights_path("results/miniworld/clip.pt")
    assert path.is_absolute() and path.is_file()
    assert weights.local_weights_path("no/such/file.pt") == weights.Path("no/such/file.pt")
