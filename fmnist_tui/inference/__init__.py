"""Classifying image files with an exported ONNX model: preprocessing, the onnxruntime session, the
file pool and the batch pipeline. Torch-free (numpy, Pillow, onnxruntime); a test keeps it so."""
