"""Run one Jupyter cell on Hugging Face Jobs hardware without losing its results.

Loading the extension must stay cheap: nothing here imports huggingface_hub,
ipywidgets or the magics module until the extension is actually loaded.
"""

from __future__ import annotations

from typing import Any

from hfjobs_magic.errors import HfJobCheckError, HfJobError, HfJobFailed, HfJobHubError, HfJobNotConfirmed

__version__ = "0.1.0"
__all__ = [
    "HfJobCheckError",
    "HfJobError",
    "HfJobFailed",
    "HfJobHubError",
    "HfJobNotConfirmed",
    "__version__",
    "load_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """Entry point of `%load_ext hfjobs_magic`."""
    from hfjobs_magic.magics import register

    register(ipython)
