"""A local stand-in for the Hugging Face Hub and Jobs API, served to the real client."""

from hfjobs_magic.sandbox.server import Sandbox

__all__ = ["Sandbox"]
