"""Getting a model out: ONNX export (torch), the HTTP server and SageMaker's training contract."""
