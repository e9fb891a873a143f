"""jal: deep active learning in JAX.

Read the package in this order: `jal.data` → `jal.models` → `jal.train` →
`jal.acquisition` → `jal.loop`; `jal.metrics` scores the curves.
"""

__version__ = "0.1.0"
