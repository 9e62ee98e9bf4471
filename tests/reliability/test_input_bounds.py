"""Second sweep, cause 2 (and 7's tracebacks): every parsed input is bounded and decoded with a clear error, exit
2: alias bombs, nesting, sizes, non-UTF-8 text, decompression bombs, 16-bit and floating-point demo images."""

import json

import numpy as np
import pytest
from PIL import Image

from harness.data.io import read_label
from harness.errors import ConfigError, DataError
from harness.eval.sem_seg_json import read_sem_seg_json
from harness.viz.inputs import parse_classes, read_image
from harness.yaml_lines import MAX_YAML_NODES, load_with_lines

HEAD = "suite: s\nmethods: [deop]\nbenchmarks: [{name: b, task: segmentation, dataset: synthetic_coco}]\n"


def _alias_bomb(depth: int, width: int = 10) -> str:
    lines = ["x:", f"  a0: &a0 [{', '.join(['v'] * width)}]"]
    for i in range(1, depth):
        lines.append(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return HEAD + "\n".join(lines) + "\n"


def test_a_1kb_alias_bomb_is_refused_before_it_expands(cli, tmp_path):
    suite = tmp_path / "bomb.yaml"
    suite.write_text(_alias_bomb(9))  # 10^9 leaves once expanded
    assert suite.stat().st_size < 1024
    code, _, err = cli("run", suite, "--dry-run")
    assert code == 2 and f"aliases (*name) expand to more than {MAX_YAML_NODES}" in err and str(suite) in err


def test_a_few_harmless_aliases_still_load():
    data, lines = load_with_lines(_alias_bomb(3))  # 10^3 leaves: a bounded expansion is allowed
    assert len(data["x"]["a2"]) == 10 and data["x"]["a2"][0][0] == ["v"] * 10 and lines[("x", "a2")] == 7


@pytest.mark.parametrize("content, message", [
    (HEAD.encode() + b"description: caf\xe9\n", "is not UTF-8 text (byte 0xe9 at offset"),
    (b"x: " + b"[" * 2000 + b"]" * 2000, "is nested too deeply to parse"),
    (HEAD.encode() + b"# " + b"x" * (1 << 20) + b"\n", "is larger than 1048576 bytes"),
])
def test_non_utf8_deep_or_huge_suites_are_clear_errors(cli, tmp_path, content, message):
    suite = tmp_path / "s.yaml"
    suite.write_bytes(content)
    code, _, err = cli("run", suite, "--dry-run")
    assert code == 2 and message in err and "Traceback" not in err, err


def test_a_non_utf8_reference_is_exit_2(cli, tmp_path):
    ref = tmp_path / "ref.yaml"
    ref.write_bytes(b"checks:\n- {cell: c\xff, metric: hiou, value: 1, tolerance: 1, direction: higher}\n")
    (tmp_path / "runs").mkdir()
    code, _, err = cli("check", tmp_path / "runs", "--against", ref)
    assert code == 2 and "is not UTF-8 text" in err


def test_non_utf8_name_and_class_files_are_clear_errors(tmp_path):
    from harness.data.name_files import load_name_file

    names = tmp_path / "names.txt"
    names.write_bytes(b"sky\ngr\xe4ss\n")
    with pytest.raises(ConfigError, match=r"name file .*names.txt is not UTF-8 text \(byte 0xe4 at offset 6\)"):
        load_name_file(names, "voc_20")
    with pytest.raises(ConfigError, match=r"class file .*names.txt is not UTF-8 text"):
        parse_classes(str(names))


def test_deeply_nested_or_huge_json_predictions_are_clear_errors(tmp_path, monkeypatch):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(DataError, match="nested too deeply to be a predictions file"):
        read_sem_seg_json(deep)
    small = tmp_path / "sem_seg_predictions.json"
    small.write_text(json.dumps([]))
    monkeypatch.setattr("harness.eval.sem_seg_json.MAX_JSON_BYTES", 1)
    with pytest.raises(DataError, match="is larger than 0 GiB"):
        read_sem_seg_json(small)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that says it is width x height, grey, 8-bit (a bomb's header: Pillow reads it at open)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_a_400_megapixel_label_png_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(20_000, 20_000))  # 400 MP declared in 57 bytes
    with pytest.raises(DataError, match=r"has more than 89478485 pixels, far more than a dataset image"):
        read_label(path)
    path.write_bytes(_png_header(9_000, 9_000))  # 81 MP: below the limit, so it is opened (and then fails as a
    with pytest.raises(DataError, match=r"cannot be read"):  # truncated file, which it is)
        read_label(path)


def test_a_jpeg_named_png_is_not_scored_as_a_label_map(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path, format="JPEG")
    with pytest.raises(DataError, match=r"is a JPEG file named .png; a lossy"):
        read_label(path)


def test_demo_reads_16_bit_grey_by_scaling_and_refuses_float_images(tmp_path):
    grey = (np.arange(8 * 12, dtype=np.uint16).reshape(8, 12) * 600)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    loaded = read_image(tmp_path / "g16.png", 512)
    expected = np.rint(grey / 257.0).astype(np.uint8)  # 65535 -> 255; Pillow alone would clip at 255
    assert np.array_equal(loaded.pixels, np.repeat(expected[:, :, None], 3, axis=2))
    Image.fromarray(np.ones((8, 8), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(DataError, match="floating-point image .*8- and 16-bit"):
        read_image(tmp_path / "f.tif", 512)


@pytest.mark.parametrize("fields, message", [
    ("cell: [a]", "cell must be text, got ['a']"),
    ("metric: {m: 1}", "metric must be text, got {'m': 1}"),
    ("note: 5", "note must be text, got 5"),
    ("value: .nan", "value must be a number (a finite one), got nan"),
    ("tolerance: .inf", "tolerance must be a number (a finite one), got inf"),
])
def test_a_reference_with_a_wrongly_typed_field_is_exit_2(cli, tmp_path, fields, message):
    item = {"cell": "c", "metric": "hiou", "value": "1", "tolerance": "1", "direction": "higher"}
    key, value = fields.split(": ", 1)
    item[key] = value
    ref = tmp_path / "ref.yaml"
    ref.write_text("checks:\n- {" + ", ".join(f"{k}: {v}" for k, v in item.items()) + "}\n")
    (tmp_path / "runs").mkdir()
    code, _, err = cli("check", tmp_path / "runs", "--against", ref)
    assert code == 2 and message in err and "Traceback" not in err, err
