"""Built-in graphkit passes, installed as the ``graphkit_passes`` package (one pass per file)."""
