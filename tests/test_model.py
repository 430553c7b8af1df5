"""UpshadeNet: structure, shapes, padding, residual, sizes, checkpoints, model-info."""

from __future__ import annotations

import dataclasses

import pytest

from upshade.host import cli
from upshade.host.errors import UpshadeError


@pytest.fixture(scope="module")
def M(torch):
    from upshade.tools import model

    return model


@pytest.mark.parametrize("upscale", ["pixel_shuffle", "nearest_conv"])
@pytest.mark.parametrize("final_kernel", [1, 3])
@pytest.mark.parametrize("residual", ["bilinear", "bicubic"])
def test_shapes_and_param_count(torch, M, upscale, final_kernel, residual):
    cfg = M.ModelConfig(blocks=3, width=2, upscale=upscale, final_kernel=final_kernel, residual=residual)
    net = M.UpshadeNet(cfg)
    out = net(torch.rand(2, 1, 9, 13))
    assert out.shape == (2, 1, 18, 26)
    assert sum(p.numel() for p in net.parameters()) == M.param_count(cfg)
    assert net.final.out_channels == (4 if upscale == "pixel_shuffle" else 1)
    assert net.final.in_channels == 3 * 2 * 2
    assert net.final.kernel_size == (final_kernel, final_kernel)


def test_structure_is_what_the_exporter_reads(M):
    net = M.UpshadeNet(M.ModelConfig(blocks=4, width=3))
    assert [c.in_channels for c in net.convs] == [1, 6, 6, 6]
    assert all(c.out_channels == 3 and c.kernel_size == (3, 3) for c in net.convs)
    assert all(c.padding_mode == "replicate" for c in [*net.convs, net.final])
    assert set(net.state_dict()) == {f"convs.{i}.{p}" for i in range(4) for p in ("weight", "bias")} | {
        "final.weight",
        "final.bias",
    }


def test_replicate_padding_keeps_flat_input_flat(torch, M):
    """Zero padding would make the borders of a flat image differ; clamp-to-edge (replicate) must not."""
    torch.manual_seed(0)
    net = M.UpshadeNet(M.ModelConfig(blocks=3, width=4)).eval()
    with torch.no_grad():
        out = net(torch.full((1, 1, 8, 10), 0.6))
    for dy in range(2):
        for dx in range(2):
            phase = out[0, 0, dy::2, dx::2]
            assert torch.allclose(phase, phase[0, 0].expand_as(phase), atol=1e-6)


def test_crelu(torch, M):
    x = torch.tensor([[[[-2.0, 3.0]]], [[[0.5, -0.25]]]])
    y = M.crelu(x)
    assert y.shape == (2, 2, 1, 2)
    assert torch.equal(y[:, :1], torch.relu(x)) and torch.equal(y[:, 1:], torch.relu(-x))
    assert torch.equal(y[:, :1] - y[:, 1:], x)  # nothing is lost


@pytest.mark.parametrize("residual", ["bilinear", "bicubic"])
def test_zero_weights_give_the_residual_interpolation(torch, M, residual):
    import torch.nn.functional as F

    net = M.UpshadeNet(M.ModelConfig(blocks=2, width=2, residual=residual))
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        y = torch.rand(1, 1, 6, 7)
        want = F.interpolate(y, scale_factor=2, mode=residual, align_corners=False)
        assert torch.equal(net(y), want)


def test_sizes(M):
    assert (M.SIZES["M"].blocks, M.SIZES["M"].width) == (7, 4)
    counts = {k: M.param_count(c) for k, c in M.SIZES.items()}
    assert counts["S"] < counts["M"] < counts["L"] <= 12_000
    assert M.param_count(M.SIZES["M"]) == 3812
    # 7x4 pixel_shuffle: blocks 1764 MACs per LR pixel + final 56*9*4, shared by 4 HR pixels.
    assert M.flops_per_output_pixel(M.SIZES["M"]) == pytest.approx(2 * (1764 + 2016) / 4)
    nc = dataclasses.replace(M.SIZES["M"], upscale="nearest_conv")
    assert M.flops_per_output_pixel(nc) == pytest.approx(2 * (1764 / 4 + 56 * 9))


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"scale": 3}, "only scale 2"),
        ({"upscale": "deconv"}, "upscale must be one of"),
        ({"final_kernel": 5}, "final_kernel must be 1 or 3"),
        ({"residual": "lanczos"}, "residual must be one of"),
        ({"blocks": 0}, "blocks must be >= 1"),
        ({"width": 2.5}, "width must be an integer"),
    ],
)
def test_config_validation(M, kwargs, msg):
    with pytest.raises(UpshadeError, match=msg):
        M.ModelConfig(**kwargs)


def test_checkpoint_roundtrip(torch, M, tmp_path):
    cfg = M.ModelConfig(blocks=2, width=3, residual="bicubic")
    net = M.UpshadeNet(cfg)
    path = tmp_path / "m.pt"
    torch.save({"config": cfg.to_dict(), "model": net.state_dict(), "metrics": {"set5_psnr": 1.0}}, path)
    loaded, ckpt = M.load_checkpoint(path)
    assert loaded.cfg == cfg and not loaded.training
    assert ckpt["metrics"]["set5_psnr"] == 1.0
    x = torch.rand(1, 1, 5, 5)
    assert torch.equal(loaded(x), net.eval()(x))


def test_load_checkpoint_errors(torch, M, tmp_path):
    with pytest.raises(UpshadeError, match="checkpoint not found"):
        M.load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(UpshadeError, match="is a directory"):
        M.load_checkpoint(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a zip at all" * 10)
    with pytest.raises(UpshadeError, match=r"junk.pt: not a readable PyTorch checkpoint"):
        M.load_checkpoint(junk)
    notdict = tmp_path / "list.pt"
    torch.save([1, 2, 3], notdict)
    with pytest.raises(UpshadeError, match="not an upshade checkpoint"):
        M.load_checkpoint(notdict)
    cfg = M.ModelConfig(blocks=2, width=2)
    badcfg = tmp_path / "badcfg.pt"
    torch.save({"config": {**cfg.to_dict(), "scale": 4}, "model": {}}, badcfg)
    with pytest.raises(UpshadeError, match="bad model config.*only scale 2"):
        M.load_checkpoint(badcfg)
    mismatch = tmp_path / "mismatch.pt"
    torch.save({"config": cfg.to_dict(), "model": M.UpshadeNet(M.ModelConfig(blocks=2, width=3)).state_dict()}, mismatch)
    with pytest.raises(UpshadeError, match="weights do not match its config"):
        M.load_checkpoint(mismatch)
    # Pickled arbitrary objects are refused (weights_only), never executed.
    evil = tmp_path / "evil.pt"
    torch.save({"config": cfg.to_dict(), "model": object()}, evil)
    with pytest.raises(UpshadeError, match="not a readable PyTorch checkpoint"):
        M.load_checkpoint(evil)


def test_checkpoint_messages_say_what_is_wrong(torch, M, tmp_path, capsys):
    """A text file is "not the zip archive torch.save writes" (was a bare "(101)": KeyError(101));
    a config/weights mismatch lists whole tensor names (was cut mid-name, with a raw TAB)."""
    text = tmp_path / "notes.txt"
    text.write_text("hello world\n")
    for argv in (["model-info", str(text)], ["export", str(text), "-o", str(tmp_path / "o.glsl")]):
        assert cli.main(argv) == 1
        assert capsys.readouterr().err == (f"upshade: error: {text}: not a readable PyTorch checkpoint "
                                           f"(not the zip archive torch.save writes)\n")
    mismatch = tmp_path / "mismatch.pt"
    small = M.UpshadeNet(M.size_config("S")).state_dict()
    small["extra.weight"] = torch.zeros(2)
    torch.save({"config": M.size_config("M").to_dict(), "model": small}, mismatch)
    with pytest.raises(UpshadeError) as info:
        M.load_checkpoint(mismatch)
    msg = str(info.value)
    assert msg == (f"{mismatch}: weights do not match its config (blocks=7, width=4: "
                   f"8 missing: convs.3.bias, convs.3.weight, convs.4.bias and 5 more; "
                   f"1 unexpected: extra.weight; "
                   f"1 of another shape: final.weight (4, 24, 3, 3) instead of (4, 56, 3, 3))")
    assert msg.isprintable()


def test_model_info_cli(torch, M, tmp_path, capsys):
    assert cli.main(["model-info"]) == 0
    out = capsys.readouterr().out
    assert "3,812" in out and "11,722" in out and "FLOPs" in out
    cfg = M.ModelConfig(blocks=2, width=2, upscale="nearest_conv")
    path = tmp_path / "c.pt"
    torch.save({"config": cfg.to_dict(), "model": M.UpshadeNet(cfg).state_dict()}, path)
    assert cli.main(["model-info", "--size", "s", str(path)]) == 0
    out = capsys.readouterr().out
    assert "nearest_conv" in out and f"{M.param_count(cfg):,}" in out and "1,492" in out
    assert cli.main(["model-info", str(tmp_path / "missing.pt")]) == 1
    assert "missing.pt: checkpoint not found" in capsys.readouterr().err


@pytest.mark.parametrize("upscale", ["pixel_shuffle", "nearest_conv"])
def test_expanded_training_form_collapses_exactly(torch, M, upscale):
    cfg = M.ModelConfig(blocks=3, width=3, upscale=upscale)
    torch.manual_seed(0)
    wide = M.UpshadeNet(cfg, expand=16).double()
    assert isinstance(wide.convs[0], M.LinearBlock) and wide.convs[0].wide.out_channels == 16
    assert sum(p.numel() for p in wide.parameters()) > 3 * M.param_count(cfg)
    plain = wide.collapsed()
    assert not plain.expand and sum(p.numel() for p in plain.parameters()) == M.param_count(cfg)
    # Same function, borders included (replicate padding commutes with the 1x1 projection).
    x = torch.rand(2, 1, 11, 7, dtype=torch.float64)
    torch.testing.assert_close(plain(x), wide(x), atol=1e-12, rtol=0)
    # The plain form is an ordinary checkpointable UpshadeNet; the wide one's keys do not load into it.
    M.UpshadeNet(cfg).double().load_state_dict(plain.state_dict())
    with pytest.raises(RuntimeError):
        M.UpshadeNet(cfg).load_state_dict(wide.state_dict())


def test_expanded_form_starts_exactly_from_a_plain_net(torch, M):
    cfg = M.ModelConfig(blocks=2, width=4)
    torch.manual_seed(1)
    plain = M.UpshadeNet(cfg)
    wide = M.UpshadeNet(cfg, expand=8)
    x = torch.rand(1, 1, 9, 10)
    assert not torch.allclose(plain(x), wide(x), atol=1e-3)
    wide.load_plain(plain)
    torch.testing.assert_close(wide(x), plain(x), atol=1e-6, rtol=0)
    for a, b in zip(wide.collapsed().parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=0)
    # The spare wide channels keep their random weights behind a zero projection (they can be recruited).
    assert wide.convs[1].wide.weight[4:].abs().sum() > 0 and wide.convs[1].project.weight[:, 4:].abs().sum() == 0
    with pytest.raises(UpshadeError, match="expand 2 is narrower than the 4 channels"):
        M.UpshadeNet(cfg, expand=2).load_plain(plain)
    with pytest.raises(UpshadeError, match="differs from"):
        wide.load_plain(M.UpshadeNet(M.ModelConfig(blocks=3, width=4)))
    with pytest.raises(UpshadeError, match="expand must be an integer >= 0"):
        M.UpshadeNet(cfg, expand=-1)
