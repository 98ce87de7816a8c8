"""graphkit: transform ONNX model graphs with passes that are proven numerically, one by one."""

__version__ = "0.1.0"
