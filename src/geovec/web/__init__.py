"""The web front end (``geovec serve``): a FastAPI search API and a map page; needs the ``web`` extra."""

from geovec.web.app import create_app

__all__ = ["create_app"]
