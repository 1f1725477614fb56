"""The HTTP receiver: webhooks in, jobs queued, operator routes and docs."""

from web.app import create_app

__all__ = ["create_app"]
