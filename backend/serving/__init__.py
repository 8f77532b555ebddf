"""The HTTP server process below the app: gunicorn's worker, bounded against slow clients."""
