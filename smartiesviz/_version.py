"""The package version, in a module of its own so any layer (``models/`` included) can read it
without importing the package's top level."""

__version__ = "0.1.0"
