"""Fraud detection: features + velocity -> rules + ONNX model -> a decision with its reasons."""
