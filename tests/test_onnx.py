"""`upshade export --format onnx`: the network as a luma graph, run by ONNX Runtime against PyTorch."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from upshade.host import cli
from upshade.host.errors import UpshadeError
from upshade.host.paths import WEIGHTS_DIR

from conftest import need

pytestmark = pytest.mark.torch

SIZES = ("S", "M", "L")
# Odd sizes, a single pixel, a batch: every H, W and N is a dynamic axis.
SHAPES = ((1, 1, 37, 53), (2, 1, 16, 9), (1, 1, 1, 1), (3, 1, 5, 64))
TOL = 1e-4


@pytest.fixture(scope="module")
def ort():
    try:
        import onnxruntime
    except ImportError:
        need("onnxruntime is not installed (pip install '.[test]')")
    return onnxruntime


@pytest.fixture(scope="module")
def exp(torch):
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        need("onnx / onnxscript are not installed (pip install '.[train]')")
    from upshade.tools import export

    return export


def random_model(torch, seed=0, **cfg):
    from upshade.tools.model import ModelConfig, UpshadeNet

    torch.manual_seed(seed)
    m = UpshadeNet(ModelConfig(**cfg)).eval()
    with torch.no_grad():  # larger biases than the default init, so CReLU's sign split matters
        for p in m.parameters():
            if p.dim() == 1:
                p.uniform_(-0.3, 0.3)
    return m


def max_error(ort, torch, data: bytes, model, shapes=SHAPES, seed=0) -> float:
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, out.name) == ("input", "output")
    assert inp.type == out.type == "tensor(float)"
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for shape in shapes:
        x = torch.rand(*shape, generator=gen)
        with torch.inference_mode():
            ref = model(x).numpy()
        got = sess.run(None, {"input": x.numpy()})[0]
        n, _, h, w = shape
        assert got.shape == ref.shape == (n, 1, 2 * h, 2 * w)
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


@pytest.mark.parametrize("size", SIZES)
def test_shipped_models_match_pytorch(size, exp, ort, torch, tmp_path, capsys):
    from upshade.tools.model import load_checkpoint

    ckpt = WEIGHTS_DIR / f"upshade_{size}.pt"
    out = tmp_path / f"upshade_{size}.onnx"
    assert cli.main(["export", str(ckpt), "-o", str(out), "--format", "onnx"]) == 0
    assert f"{out}: ONNX opset" in capsys.readouterr().out
    model, _ = load_checkpoint(ckpt)
    assert max_error(ort, torch, out.read_bytes(), model) <= TOL
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # one self-contained file, no .data beside it


@pytest.mark.parametrize("cfg", [
    dict(blocks=2, width=4, upscale="pixel_shuffle"),
    dict(blocks=3, width=5, upscale="nearest_conv"),
    dict(blocks=2, width=3, upscale="nearest_conv", final_kernel=1),
    dict(blocks=2, width=4, upscale="pixel_shuffle", residual="bicubic"),
], ids=["pixel_shuffle", "nearest_conv", "nearest_conv_k1", "bicubic_residual"])
def test_random_models_match_pytorch(cfg, exp, ort, torch):
    model = random_model(torch, seed=len(cfg), **cfg)
    assert max_error(ort, torch, exp.export_onnx(model), model, seed=1) <= TOL


def test_training_form_is_collapsed(exp, ort, torch):
    from upshade.tools.model import ModelConfig, UpshadeNet

    torch.manual_seed(5)
    wide = UpshadeNet(ModelConfig(blocks=2, width=4), expand=16).eval()
    data = exp.export_onnx(wide)
    assert max_error(ort, torch, data, wide, shapes=((1, 1, 11, 13),)) <= TOL
    import onnx

    # The plain net's weights only: 2 convs + the final conv, no 1x1 projections.
    convs = [n for n in onnx.load_from_string(data).graph.node if n.op_type == "Conv"]
    assert len(convs) == 3


def test_graph_is_dynamic_deterministic_and_documented(exp, torch, tmp_path):
    import onnx

    model = random_model(torch, blocks=2, width=4)
    a, b = exp.export_onnx(model, name="tiny"), exp.export_onnx(model, name="tiny")
    assert a == b
    proto = onnx.load_from_string(a)
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [exp.ONNX_OPSET]
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    (inp,), (out,) = proto.graph.input, proto.graph.output
    n, one, h, w = dims(inp)
    assert one == 1 and all(isinstance(d, str) for d in (n, h, w))
    assert dims(out)[:2] == [n, 1] and all(isinstance(d, str) for d in dims(out)[2:])
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["upshade.name"] == "tiny"
    assert json.loads(meta["upshade.config"]) == model.cfg.to_dict()
    assert int(meta["upshade.params"]) == sum(p.numel() for p in model.parameters())
    assert str(tmp_path.parent) not in a.decode("latin-1") and "/home/" not in a.decode("latin-1")
    # Other weights, other bytes.
    assert exp.export_onnx(random_model(torch, seed=9, blocks=2, width=4), name="tiny") != a


def test_format_follows_the_suffix(exp, ort, torch, tmp_path):
    ckpt = tmp_path / "rand.pt"
    model = random_model(torch, blocks=2, width=4)
    torch.save({"config": model.cfg.to_dict(), "model": model.state_dict()}, ckpt)
    out = tmp_path / "rand.onnx"
    assert cli.main(["export", str(ckpt), "-o", str(out)]) == 0  # .onnx without --format: ONNX
    assert out.read_bytes() == exp.export_onnx(ckpt)
    assert max_error(ort, torch, out.read_bytes(), model, shapes=((1, 1, 9, 7),)) <= TOL


# ----------------------------------------------------------------- errors: one line, nothing written


def _err(capsys, argv) -> str:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("upshade: error: ")
    return err


@pytest.fixture
def ckpt(torch, tmp_path):
    model = random_model(torch, blocks=2, width=4)
    path = tmp_path / "in" / "rand.pt"
    path.parent.mkdir()
    torch.save({"config": model.cfg.to_dict(), "model": model.state_dict()}, path)
    return path


def test_errors(exp, ckpt, tmp_path, capsys):
    outdir = tmp_path / "out"
    outdir.mkdir()
    bad = ckpt.parent / "bad.pt"
    bad.write_bytes(b"garbage")
    assert str(bad) in _err(capsys, ["export", str(bad), "-o", str(outdir / "x.onnx")])
    missing = ckpt.parent / "missing.pt"
    assert str(missing) in _err(capsys, ["export", str(missing), "-o", str(outdir / "x.onnx"), "--format", "onnx"])
    err = _err(capsys, ["export", str(ckpt), "-o", str(outdir / "x.onnx"), "--format", "tflite"])
    assert "--format 'tflite'" in err and "glsl, onnx" in err
    err = _err(capsys, ["export", str(ckpt), "-o", str(outdir / "x.glsl"), "--format", "onnx"])
    assert "x.glsl" in err and "x.onnx" in err
    err = _err(capsys, ["export", str(ckpt), "-o", str(outdir / "x.onnx"), "--format", "glsl"])
    assert "x.onnx" in err and "--format onnx" in err
    err = _err(capsys, ["export", str(ckpt), "-o", str(outdir / "x.onnx"), "--compute"])
    assert "--compute" in err
    assert list(outdir.iterdir()) == []


def test_missing_exporter_packages(exp, ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails as if not installed
    out = tmp_path / "x.onnx"
    err = _err(capsys, ["export", str(ckpt), "-o", str(out)])
    assert "onnxscript" in err and "pip install" in err
    assert not out.exists()


def test_failed_export_is_one_line_and_writes_nothing(exp, ckpt, tmp_path, capsys, monkeypatch, torch):
    def boom(*a, **k):
        raise RuntimeError("simulated exporter failure\nwith a traceback-ish second line")

    monkeypatch.setattr(torch.onnx, "export", boom)
    out = tmp_path / "x.onnx"
    err = _err(capsys, ["export", str(ckpt), "-o", str(out)])
    assert "ONNX export failed" in err and "simulated exporter failure" in err
    assert not out.exists() and not list(tmp_path.glob(".*part-*"))


def test_bad_checkpoint_dict(exp, torch):
    with pytest.raises(UpshadeError, match="'config' and 'model'"):
        exp.export_onnx({"model": {}})
