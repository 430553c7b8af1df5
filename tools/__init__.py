"""upshade offline tools: model, data, training, export, evaluation.

These import torch (install the `train` extra: pip install 'upshade[train]').
They use the runtime (upshade.host) only through upshade.host.api.
"""
