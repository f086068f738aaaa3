"""The ``singer`` connector: any Singer tap as a source (see ``connector.py``)."""
