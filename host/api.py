"""The runtime as the offline tools see it: the one module of ``upshade.host`` that ``upshade.tools`` imports.

``upshade.host`` (the runtime) never imports torch and never imports the tools,
except through ``host/offline.py`` (lazily, for ``bench``'s PyTorch row and
exporting a checkpoint) and the command table of ``host/cli.py``.
``upshade.tools`` (training, export, evaluation; needs the ``train`` extra)
builds on the runtime through the names below and nothing else: the shared
basics (errors, safe output files, image files, progress lines, where the
shipped files are and which models ship) and the GL pipeline that evaluation
runs shaders through. ``tests/test_layers.py`` checks both directions.
"""

from __future__ import annotations

from .errors import MediaError, ShaderError, UpshadeError
from .fileio import atomic_output, check_output_path
from .gpu import create_headless_context
from .hookparse import load_shader
from .imageio import image_to_frame, read_image, write_image
from .paths import (LATER_STAGE_MIN_SCALE, MODEL_NAMES, MODEL_SIZES, SAMPLES_DIR, SHADERS_DIR, STAGE_MIN_SCALE, WEIGHTS_DIR,
                    is_model_name, model_stem, shipped_shader)
from .pipeline import Renderer
from .progress import progress

__all__ = [
    "MODEL_NAMES", "MODEL_SIZES", "is_model_name", "model_stem", "SAMPLES_DIR", "SHADERS_DIR", "WEIGHTS_DIR", "MediaError", "Renderer", "ShaderError", "UpshadeError",
    "STAGE_MIN_SCALE", "LATER_STAGE_MIN_SCALE",
    "atomic_output", "check_output_path", "create_headless_context", "image_to_frame", "load_shader",
    "progress", "read_image", "shipped_shader", "write_image",
]
