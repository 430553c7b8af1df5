"""upshade runtime: decode -> upload -> render mpv hook shaders -> present/encode.

This package must never import torch: the player and the image/video commands
run on machines with only moderngl, glfw, av and numpy installed.
"""

__version__ = "0.1.0"
