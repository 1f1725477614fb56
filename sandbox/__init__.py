"""Fake Acronis and AlgaPSA servers for the demo, end-to-end tests and benchmarks.

Run ``python -m sandbox --port P --tenants N``; from Python, use
:func:`serve_in_thread` or :func:`create_app` with the Flask test client.
"""

from sandbox.app import create_app, serve_in_thread
from sandbox.state import Options, SandboxState

__all__ = ["Options", "SandboxState", "create_app", "serve_in_thread"]
