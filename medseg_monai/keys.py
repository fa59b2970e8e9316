"""Dictionary keys used across transforms, training, inference and writers."""

IMAGE = "image"
LABEL = "label"
PRED = "pred"
NAME = "name"

__all__ = ["IMAGE", "LABEL", "PRED", "NAME"]
