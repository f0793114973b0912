"""Lightning training loops; the only package that imports Lightning."""
