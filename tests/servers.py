"""Process helpers for tests; the implementation is shared with `make demo`."""

from northwind.processes import ROOT, VENV_BIN, ServerProcess, free_port, http_ok, port_in_use, wait_for  # noqa: F401
