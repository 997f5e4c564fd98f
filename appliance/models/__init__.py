"""The model store: the manifest of every model, where each comes from, and the verified files on disk."""
