"""gunicorn settings for the receiver: ``gunicorn -c web/gunicorn.conf.py``.

PORT and WEB_CONCURRENCY come from the environment, as most platforms set
them. Threaded workers keep client connections open between requests, which
measured faster than one-request-per-connection sync workers on two cores
(``make bench-webhooks``). The access log leaves out query strings and every
header, so no token or signature is ever written to it.
"""

from __future__ import annotations

import os

wsgi_app = "web:create_app()"
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
threads = int(os.environ.get("WEB_THREADS", "4"))
keepalive = 5
# A request that takes longer than this is stuck; webhooks answer in ms.
timeout = 30
graceful_timeout = 20

accesslog = "-" if os.environ.get("WEB_ACCESS_LOG", "1") != "0" else None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Path without the query string (%(U)s), status, size and time in ms.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
# The path is logged decoded: this logger escapes what could forge a line.
logger_class = "web.access_log.SafeAccessLogger"
# The control socket's default path is one per user, shared by every
# gunicorn on the host; this service is run by its supervisor, not gunicornc.
control_socket_disable = True
