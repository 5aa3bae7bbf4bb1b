"""OpenAI-compatible serving gateway (FastAPI). Built under issue 5; nothing here yet."""
