"""Offline: synthetic worlds, training, ONNX export, evaluation, registration (`make models`)."""
