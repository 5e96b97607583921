"""A local stand-in for the Hugging Face Hub and Jobs API, served to the real client (DESIGN.md section 5).

Imports only its own modules and the hardware table (`remote.hardware`, the flavors and prices it
serves); nothing of the notebook side, so it runs anywhere the package is installed.
"""

from hfjobs_magic.sandbox.server import Sandbox

__all__ = ["Sandbox"]
