"""Runtime backends and input helpers (onnxruntime is the default backend)."""
