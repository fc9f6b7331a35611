"""lipbench: a reproducible benchmark of Lipschitz-constrained denoisers for plug-and-play restoration."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lipbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
