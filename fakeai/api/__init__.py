"""The HTTP API: OpenAI-compatible endpoints, their schemas, errors and recording."""
