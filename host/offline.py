"""The runtime's one way into the offline tools (``upshade.tools``, which need PyTorch: the train extra).

The runtime never needs torch. ``bench``'s PyTorch row and its ``--model CKPT`` (a
checkpoint is exported to a shader first) come through here, and the tools are
imported only when one of these is called. Apart from this module and the command
table of host/cli.py nothing in host/ touches ``upshade.tools``; the tools see the
runtime through host/api.py (``tests/test_layers.py`` checks both directions).
"""

from __future__ import annotations

from pathlib import Path

from .errors import UpshadeError

INSTALL = "pip install 'upshade[train]'"


class NoTorch(UpshadeError):
    """PyTorch (the ``train`` extra) is not installed."""


def _need_torch() -> None:
    try:
        import torch  # noqa: F401  (the torch boundary: imported only when the tools are wanted)
    except ImportError:
        raise NoTorch(f"PyTorch not installed ({INSTALL})") from None


def torch_model(spec: str):
    """One of our models in PyTorch: a shipped size (S, M, L) or a checkpoint path
    (``evaluate.load_torch_method``: ``.model``, ``.source``)."""
    _need_torch()
    from ..tools.evaluate import load_torch_method

    return load_torch_method(spec)


def torch_forward_ms(model, size: tuple[int, int], runs: int, tick=None) -> tuple[float, int]:
    """(median ms of ``runs`` CPU forwards on a ``size`` luma frame, the thread count that was fastest)."""
    _need_torch()
    from ..tools.evaluate import torch_forward_best

    return torch_forward_best(model, size, runs, tick=tick)


def export_shader(ckpt: Path, form: str) -> str:
    """The hook shader text of a checkpoint in ``form`` (see paths.SHADER_FORMS)."""
    _need_torch()
    from ..tools.export import export_shader as export

    return export(ckpt, form=form)
