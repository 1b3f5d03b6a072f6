"""geovec: one embedding space for remote-sensing images, text, boxes and geographic coordinates."""

from geovec.errors import GeovecError, GeovecInputError

__version__ = "0.1.0"
__all__ = ["GeovecError", "GeovecInputError", "__version__"]
