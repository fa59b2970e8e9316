"""Dictionary keys used across transforms, engines and writers."""

IMAGE = "image"
LABEL = "label"
PRED = "pred"
NAME = "name"

__all__ = ["IMAGE", "LABEL", "PRED", "NAME"]
