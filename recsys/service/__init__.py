"""The service functions both adapters (CLI and HTTP) call. No typer, rich or litestar in here.

Heavy libraries (implicit, faiss, torch) are imported inside the functions that need them, so
importing this package stays cheap.
"""

from recsys.service.data import engine_for, ingest, status

__all__ = ["engine_for", "ingest", "status"]
