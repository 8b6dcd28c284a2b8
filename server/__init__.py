"""Composition: settings, the ASGI app and the command line."""
