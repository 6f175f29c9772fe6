"""fakeai: a fake OpenAI-compatible LLM inference server with an exact metrics engine."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fakeai")
    """The installed distribution's version (``pyproject.toml``'s, once installed)."""
except PackageNotFoundError:  # pragma: no cover - run from a source tree never installed
    __version__ = "0+unknown"
