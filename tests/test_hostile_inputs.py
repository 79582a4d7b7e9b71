"""Hostile checkpoints and models: pickle payloads, lying safetensors headers and metadata, oversized
archives, NaN/Inf weights and NaN outputs.

Each must give one ``robench: error:`` line (exit 2, no traceback), run nothing it read from the file,
and leave no results behind. docs/security.md describes the policies these tests check.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from robench.errors import RobenchError
from robench.models.checkpoint import SIZE_LIMIT_ENV, save_checkpoint
from robench.models.loading import load_model
from robench.reports.runs import LEGACY_PER_IMAGE_FILE, PER_IMAGE_FILE
from tests.conftest import one_error_line, tiny_model
from tests.fixtures.hostile import Payload, nan_for_bright, nan_when_perturbed

FIXTURES = Path(__file__).parent / "fixtures"


def evaluate_args(model: Path | str, data: Path, out: Path, *extra: object) -> list[object]:
    return ["evaluate", "--model", model, "--data", f"npz:{data}", "--limit", 16, "--batch-size", 8, "--out", out,
            *extra]


# ---------------------------------------------------------------------------------------------- pickle payloads


def write_payloads(tmp: Path, marker: Path) -> dict[str, tuple[Path, list[str]]]:
    """The payload as the whole file, inside a robench-format checkpoint, and as a value in a bare state dict."""
    torch.save(Payload(str(marker)), tmp / "payload.pt")
    robench_dict = torch.load(save_checkpoint(tiny_model(), tmp / "good.pt"), weights_only=True)
    robench_dict["meta"]["training"] = {"note": Payload(str(marker))}
    torch.save(robench_dict, tmp / "in_robench.pt")
    torch.save({**tiny_model().net.state_dict(), "extra": Payload(str(marker))}, tmp / "in_state_dict.pt")
    return {"whole file": (tmp / "payload.pt", []),
            "robench checkpoint": (tmp / "in_robench.pt", []),
            "state dict value": (tmp / "in_state_dict.pt", ["--arch", "cnn_tiny"])}


PAYLOADS = ["whole file", "robench checkpoint", "state dict value"]


@pytest.mark.parametrize("case", PAYLOADS)
def test_pickle_payload_is_refused_without_running(cli, small_npz: Path, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "marker"
    path, extra = write_payloads(tmp_path, marker)[case]
    r = cli(*evaluate_args(path, small_npz, tmp_path / "out", *extra))
    line = one_error_line(r)
    assert "--trust-checkpoint" in line and str(path) in line
    assert not marker.exists(), "the payload ran"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case,code", [("whole file", 2), ("robench checkpoint", 0), ("state dict value", 0)])
def test_pickle_payload_runs_with_trust_checkpoint(cli, small_npz: Path, tmp_path: Path, case: str,  # type: ignore[no-untyped-def]
                                                   code: int) -> None:
    """The positive control: the payload is live, so the tests above would catch a loader that ran it."""
    marker = tmp_path / "marker"
    path, extra = write_payloads(tmp_path, marker)[case]
    r = cli(*evaluate_args(path, small_npz, tmp_path / "out", *extra, "--trust-checkpoint"))
    assert marker.exists(), "the payload did not run: the refusal tests prove nothing"
    assert r.code == code, r.err  # the whole-file payload unpickles to os.system's return value: no weights
    if code == 2:
        assert "holds no state dict" in one_error_line(r)


@pytest.mark.slow
def test_pickle_payload_refused_in_a_fresh_process(small_npz: Path, tmp_path: Path) -> None:
    """As a new user would run it: ``python -m robench evaluate --model payload.pt`` from another directory."""
    marker = tmp_path / "marker"
    path, _ = write_payloads(tmp_path, marker)["whole file"]
    proc = subprocess.run([sys.executable, "-m", "robench", "evaluate", "--model", str(path), "--data", f"npz:{small_npz}",
                           "--out", str(tmp_path / "out")], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ROBENCH_PROGRESS="0", OMP_NUM_THREADS="1"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("robench: error:") and "--trust-checkpoint" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not marker.exists(), "the payload ran"
    assert not (tmp_path / "out").exists()


def payload_export_program(tmp: Path, marker: Path, where: str) -> Path:
    """A valid ``torch.export`` program of the tiny model whose archive carries the payload: as a weight
    flagged ``use_pickle`` (torch unpickles those with ``weights_only=False``), or as the sample inputs
    (which torch retries with ``weights_only=False`` when the safe load fails)."""
    program = torch.export.export(tiny_model(), (torch.rand(2, 3, 32, 32),))
    torch.export.save(program, str(tmp / "clean.pt2"))
    payload = tmp / "payload.bin"
    torch.save(Payload(str(marker)), payload)
    with zipfile.ZipFile(tmp / "clean.pt2") as zin, zipfile.ZipFile(tmp / "evil.pt2", "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if where == "pickled weight" and info.filename.endswith("weights/model_weights_config.json"):
                config = json.loads(data)
                config["config"]["net.features.0.weight"]["use_pickle"] = True
                data = json.dumps(config).encode()
            if (where == "pickled weight" and info.filename.endswith("weights/weight_0")) or \
                    (where == "sample inputs" and info.filename.endswith("sample_inputs/model.pt")):
                data = payload.read_bytes()
            zout.writestr(info, data)
    return tmp / "evil.pt2"


@pytest.mark.parametrize("where", ["pickled weight", "sample inputs"])
def test_pickle_payload_in_a_torch_export_program(cli, small_npz: Path, tmp_path: Path, where: str) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "marker"
    path = payload_export_program(tmp_path, marker, where)
    line = one_error_line(cli(*evaluate_args(path, small_npz, tmp_path / "out")))
    assert "--trust-checkpoint" in line and str(path) in line
    assert not marker.exists(), "the payload ran"
    cli(*evaluate_args(path, small_npz, tmp_path / "out", "--trust-checkpoint"))
    assert marker.exists(), "the payload did not run with --trust-checkpoint: the refusal above proves nothing"


# ---------------------------------------------------------------------------------------------- lying safetensors headers


def split_safetensors(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def craft(header: dict, body: bytes, length: int | None = None, raw_header: bytes | None = None) -> bytes:
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + body


def lying_safetensors(good: Path) -> dict[str, tuple[bytes, str]]:
    """Files whose header contradicts itself or the file, each with the message expected."""
    header, body = split_safetensors(good)

    def edited(change) -> dict:  # type: ignore[no-untyped-def]
        h = json.loads(json.dumps(header))
        change(h)
        return h

    last = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1])
    size = len(craft(header, body))
    return {
        "shape vs offsets": (craft(edited(lambda h: h["fc.bias"].update(shape=[20])), body),
                             "'fc.bias' of shape [20] and dtype F32 needs 80 bytes but its data offsets span 40"),
        "dtype vs offsets": (craft(edited(lambda h: h["fc.bias"].update(dtype="F16")), body),
                             "dtype F16 needs 20 bytes but its data offsets span 40"),
        "offsets beyond the file": (craft(edited(lambda h: h[last]["data_offsets"].__setitem__(1, len(body) + 4096)),
                                          body), f"beyond the {len(body)} data bytes in the file"),
        "offsets overlap": (craft(edited(lambda h: h["fc.weight"].update(
            dtype="F32", shape=[10], data_offsets=h["fc.bias"]["data_offsets"])), body), "overlap"),
        "unknown dtype": (craft(edited(lambda h: h["fc.bias"].update(dtype="Q7")), body), "unknown dtype 'Q7'"),
        "negative shape": (craft(edited(lambda h: h["fc.bias"].update(shape=[-10])), body), "invalid shape [-10]"),
        "header length past the end": (craft(header, body, length=size - 4), "header length"),
        "header length huge": (craft(header, body, length=2**62), "exceeds the file"),
        "header not JSON": (craft({}, body, raw_header=b'{"fc.bias": {oops'), "header is not valid JSON"),
        "robench metadata not JSON": (craft(edited(lambda h: h["__metadata__"].update(robench="{not json")), body),
                                      "robench metadata in the header is not valid JSON"),
    }


SAFETENSORS_CASES = ["shape vs offsets", "dtype vs offsets", "offsets beyond the file", "offsets overlap",
                     "unknown dtype", "negative shape", "header length past the end", "header length huge",
                     "header not JSON", "robench metadata not JSON"]


@pytest.mark.parametrize("case", SAFETENSORS_CASES)
def test_lying_safetensors_header_is_one_line(cli, small_npz: Path, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    good = save_checkpoint(tiny_model(), tmp_path / "good.safetensors")
    content, message = lying_safetensors(good)[case]
    path = tmp_path / "lying.safetensors"
    path.write_bytes(content)
    line = one_error_line(cli(*evaluate_args(path, small_npz, tmp_path / "out")))
    assert message in line and str(path) in line, line
    assert not (tmp_path / "out").exists()


def test_safetensors_entry_that_is_not_an_object(tmp_path: Path) -> None:
    good = save_checkpoint(tiny_model(), tmp_path / "good.safetensors")
    _, body = split_safetensors(good)
    (tmp_path / "junk.safetensors").write_bytes(craft({}, body, raw_header=b'{"fc.bias": 5}'))
    with pytest.raises(RobenchError, match="the entry for tensor 'fc.bias' is not an object"):
        load_model(str(tmp_path / "junk.safetensors"))


# ---------------------------------------------------------------------------------------------- lying robench metadata


def lie(tmp: Path, name: str, **meta: object) -> Path:
    obj = torch.load(save_checkpoint(tiny_model(), tmp / "good.pt"), weights_only=True)
    obj["meta"].update(meta)
    torch.save(obj, tmp / f"{name}.pt")
    return tmp / f"{name}.pt"


METADATA_LIES = {
    "arch": ({"arch": "cnn_small"}, "do not match architecture 'cnn_small'"),
    "num_classes": ({"num_classes": 5}, "the metadata says 5 classes but no weight in the file has 5 outputs"),
    "huge num_classes": ({"num_classes": 10**12}, "the metadata says 1000000000000 classes"),  # would allocate 256 TB
    "num_classes type": ({"num_classes": "ten"}, "num_classes 'ten' is not a positive integer"),
    "channels": ({"input_size": [1, 32, 32]}, "the metadata says 1-channel input but no weight"),
    "image size": ({"input_size": [3, 64, 64]}, "expects 64×64 images but the dataset's are 32×32"),
    "input_size type": ({"input_size": [3, 32]}, "input_size [3, 32] is not C,H,W positive integers"),
    "mean length": ({"mean": [0.5] * 4, "std": [0.25] * 4}, "mean/std have 4 values but the model takes 3 channels"),
    "mean not finite": ({"mean": [float("nan")] * 3}, "mean/std hold non-finite values"),
}


@pytest.mark.parametrize("case", list(METADATA_LIES))
def test_lying_robench_metadata_is_one_line(cli, small_npz: Path, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    meta, message = METADATA_LIES[case]
    path = lie(tmp_path, "lying", **meta)
    line = one_error_line(cli(*evaluate_args(path, small_npz, tmp_path / "out")))
    assert message in line, line
    assert not (tmp_path / "out").exists()


def test_metadata_cannot_choose_code_to_import_and_call(cli, small_npz: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """An ``arch`` of ``package.module:callable`` in the file would have robench import and call any
    importable function (``os:abort`` crashes the process); it needs the user's --arch/--arch-path."""
    marker = tmp_path / "called"
    monkeypatch.setenv("ROBENCH_TEST_ARCH_MARKER", str(marker))
    path = lie(tmp_path, "callable", arch="tests.fixtures.hostile:record_call")
    line = one_error_line(cli(*evaluate_args(path, small_npz, tmp_path / "out")))
    assert "'tests.fixtures.hostile:record_call', Python code robench would import and call" in line
    assert "--arch tests.fixtures.hostile:record_call" in line
    assert not marker.exists()
    # the user's own choice is honoured (and the callable really runs: the refusal above is what stopped it)
    r = cli(*evaluate_args(path, small_npz, tmp_path / "out", "--arch-path", FIXTURES))
    assert marker.exists()
    assert "do not match architecture" in one_error_line(r)


# ---------------------------------------------------------------------------------------------- size limit


def declare_size(src: Path, dst: Path, entry_suffix: str, size: int) -> Path:
    """Copy the zip archive ``src`` to ``dst`` with one entry's uncompressed size in the central directory
    set to ``size`` (written as ZIP64): a zip-bomb-like file of a few kilobytes."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
        target = next(i for i in zout.infolist() if i.filename.endswith(entry_suffix))
        target.file_size = size  # written to the central directory at close
    return dst


def test_zip_declaring_huge_uncompressed_data_is_refused_before_loading(cli, small_npz: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SIZE_LIMIT_ENV, raising=False)
    good = save_checkpoint(tiny_model(), tmp_path / "good.pt")
    bomb = declare_size(good, tmp_path / "bomb.pt", "/data/0", 2**40)
    assert bomb.stat().st_size < 200_000 and sum(i.file_size for i in zipfile.ZipFile(bomb).infolist()) > 2**40
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load reached"))
    line = one_error_line(cli(*evaluate_args(bomb, small_npz, tmp_path / "out")))
    assert "declares 1024.0 GiB of uncompressed data, more than the 16 GiB limit" in line
    assert SIZE_LIMIT_ENV in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_file_larger_than_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    path = save_checkpoint(tiny_model(), tmp_path / f"m{suffix}")
    monkeypatch.setenv(SIZE_LIMIT_ENV, str(16 / 1024**2))  # 16 KiB; the tiny model is ~100 KiB
    with pytest.raises(RobenchError, match=rf"more than the {16 / 1024**2:g} GiB limit for checkpoints.*{SIZE_LIMIT_ENV}"):
        load_model(str(path))
    monkeypatch.setenv(SIZE_LIMIT_ENV, "0")  # 0: no limit
    assert load_model(str(path)).info.arch == "cnn_tiny"
    monkeypatch.setenv(SIZE_LIMIT_ENV, "lots")
    with pytest.raises(RobenchError, match=f"{SIZE_LIMIT_ENV} must be a number of GiB"):
        load_model(str(path))


# ---------------------------------------------------------------------------------------------- NaN / Inf weights


@pytest.mark.parametrize("kind", ["robench .pt", "safetensors", "bare state dict"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(cli, small_npz: Path, tmp_path: Path, kind: str, value: float) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model()
    with torch.no_grad():
        model.net.fc.weight[3, 7] = value
    extra: list[str] = []
    if kind == "bare state dict":
        torch.save(model.net.state_dict(), tmp_path / "m.pth")
        path, extra = tmp_path / "m.pth", ["--arch", "cnn_tiny"]
    else:
        path = save_checkpoint(model, tmp_path / ("m.pt" if kind == "robench .pt" else "m.safetensors"))
    line = one_error_line(cli(*evaluate_args(path, small_npz, tmp_path / "out", *extra)))
    assert "weight 'fc.weight' contains NaN or Inf values" in line
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- NaN outputs


def flat_images(tmp: Path, n: int = 16, white: int | None = None) -> Path:
    """``n`` flat grey 32×32 images (image ``white`` all 255), 10 classes."""
    levels = (40 + 10 * np.arange(n)).astype(np.uint8)
    if white is not None:
        levels[white] = 255
    x = np.broadcast_to(levels[:, None, None, None], (n, 32, 32, 3)).copy()
    np.savez(tmp / "flat.npz", x=x, y=np.arange(n) % 10, classes=np.array(list("abcdefghij")))
    return tmp / "flat.npz"


def assert_no_results(out: Path) -> None:
    for name in ("results.csv", PER_IMAGE_FILE, LEGACY_PER_IMAGE_FILE, "meta.json"):
        assert not (out / name).exists(), f"{name} written from NaN outputs"


def save_class0_net(net: torch.nn.Module, path: Path) -> Path:
    """Save ``net`` set to predict class 0 for every image (images 0 and 10 are then correct, and attacked)."""
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.bias.copy_(-torch.arange(10.0))
    torch.save(net.state_dict(), path)
    return path


def test_model_with_nan_outputs_midway_stops_the_run(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    save_class0_net(nan_for_bright(), tmp_path / "nan.pt")
    data = flat_images(tmp_path, white=10)  # batch 8..15 holds the one image the model answers NaN for
    out = tmp_path / "out"
    r = cli("evaluate", "--model", tmp_path / "nan.pt", "--arch", "hostile:nan_for_bright", "--arch-path", FIXTURES,
            "--data", f"npz:{data}", "--batch-size", 8, "--out", out)
    assert "the model outputs NaN or Inf on images 8..15" in one_error_line(r)
    assert_no_results(out)


@pytest.mark.parametrize("suite,extra,where", [
    ("inequality", ["--ina-budgets", "0.01", "--rn-budgets", "0.1", "--occlusion-fill", "0"], "on perturbed images"),
    ("corruptions", ["--corruptions", "gaussian_noise", "--severities", "1"], "on gaussian_noise images (severity 1)"),
    ("adversarial", ["--pgd-steps", "1"], "on adversarial images"),
])
def test_model_with_nan_outputs_on_attacked_images_stops_the_run(cli, tmp_path: Path, suite: str,  # type: ignore[no-untyped-def]
                                                                  extra: list[str], where: str) -> None:
    """Finite on the clean images, NaN on every perturbed copy: the argmax of NaN logits is an arbitrary
    class, which would count as "fooled" and give a silent 100% error rate."""
    save_class0_net(nan_when_perturbed(), tmp_path / "nan.pt")
    out = tmp_path / "out"
    r = cli("evaluate", "--model", tmp_path / "nan.pt", "--arch", "hostile:nan_when_perturbed", "--arch-path", FIXTURES,
            "--data", f"npz:{flat_images(tmp_path)}", "--suite", suite, *extra, "--out", out)
    assert f"the model outputs NaN or Inf {where}" in one_error_line(r)
    assert_no_results(out)


def test_training_with_a_callable_arch_still_reloads_its_checkpoint(cli, small_npz: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`train --arch pkg.module:callable` names the callable itself: its own checkpoint (metadata naming it)
    loads at the end of training, and as an IGD teacher in a command with the same --arch."""
    arch = "tests.fixtures.nobn_net:net"
    common = ["--arch", arch, "--data", f"npz:{small_npz}", "--epochs", 1, "--batch-size", 32, "--eval-limit", 32,
              "--device", "cpu"]
    r = cli("train", *common, "--out", tmp_path / "m.pt")
    assert r.code == 0, r.err
    r = cli("train", *common, "--method", "igd", "--teacher", tmp_path / "m.pt", "--attack-steps", 1,
            "--eval-pgd-steps", 0, "--out", tmp_path / "igd.pt")
    assert r.code == 0, r.err
    with pytest.raises(RobenchError, match="Python code robench would import and call"):
        load_model(str(tmp_path / "m.pt"))  # elsewhere, the file alone cannot choose code to run
    assert load_model(str(tmp_path / "m.pt"), arch=arch).info.arch == arch
