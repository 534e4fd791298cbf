"""Where verified files land: one module per destination, one small protocol."""
