"""fakeai: a fake OpenAI-compatible LLM inference server with an exact metrics engine."""

__version__ = "0.1.0"
