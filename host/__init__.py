"""upshade runtime: decode -> upload -> render mpv hook shaders -> present/encode.

This package must never import torch: the player and the image/video commands
run on machines with only moderngl, glfw, av and numpy installed. The offline
tools (upshade.tools) use it through host/api.py; it reaches them only through
host/offline.py (tests/test_layers.py checks both).
"""

__version__ = "0.1.0"
