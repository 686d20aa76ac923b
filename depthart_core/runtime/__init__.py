"""Runtime backends behind one interface: PyTorch, ONNX Runtime, TensorRT."""
