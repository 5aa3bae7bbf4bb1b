"""Base models: local loading, the tiny bootstrap model, the multimodal wrapper."""
