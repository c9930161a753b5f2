"""The reconcile pipeline (pipeline.py) and the thin Kopf handlers that call it (handlers.py)."""
