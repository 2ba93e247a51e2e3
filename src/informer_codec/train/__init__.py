"""Training and export. Imported only by ``informer train`` / ``informer export``."""
