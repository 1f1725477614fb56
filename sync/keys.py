"""Every Redis key the service uses, built from named templates in one place."""

from __future__ import annotations

import re

LINKS = "{prefix}:links"
LINK_CLIENTS = "{prefix}:link-clients"
ACRONIS_TOKEN = "{prefix}:acronis-token:{credentials}"
LAST_RUN = "{prefix}:last-run"
WEBHOOK_SEEN = "{prefix}:webhook-seen:{source}:{message_id}"
EXCLUDED = "{prefix}:excluded"

# Jobs, schedule and metrics (worker/).
PENDING_UPSERT = "{prefix}:pending-upsert:{tenant_id}"
PENDING_RECONCILE = "{prefix}:pending-reconcile:{mode}"
UPSERT_SEQUENCE = "{prefix}:upsert-sequence"
TENANT_LOCK = "{prefix}:tenant-lock:{tenant_id}"
POLL_CURSOR = "{prefix}:poll-cursor"
SCHEDULE_CLAIM = "{prefix}:schedule-claim:{kind}:{slot}"
RUN_HISTORY = "{prefix}:run-history"
RUN_TALLY = "{prefix}:run-tally:{run_id}"
METRICS = "{prefix}:metrics:{family}"

# The admin pages (web/admin*.py).
LOGIN_LIMIT = "{prefix}:login-limit"
ADMIN_SESSION = "{prefix}:admin-session:{sid}"
REVIEW_ACCEPTED = "{prefix}:review-accepted"


# Characters a Redis SCAN pattern reads as wildcards.
_GLOB = re.compile(r"([*?\[\]\\])")


class Keys:
    """Key names under one prefix.

    The prefix keeps the sync's own keys apart; RQ's keys and job ids are not
    under it, so a Redis database per install is still the safe choice.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    @property
    def links(self) -> str:
        """Hash: tenant id -> link record (JSON)."""
        return LINKS.format(prefix=self.prefix)

    @property
    def link_clients(self) -> str:
        """Hash: client id -> tenant id, so that one client has one tenant."""
        return LINK_CLIENTS.format(prefix=self.prefix)

    @property
    def last_run(self) -> str:
        """String: the summary of the last reconcile (JSON)."""
        return LAST_RUN.format(prefix=self.prefix)

    @property
    def excluded(self) -> str:
        """Set: ids of the tenants an admin keeps out of the sync."""
        return EXCLUDED.format(prefix=self.prefix)

    def acronis_token(self, credentials: str) -> str:
        """String with a TTL: the cached access token of one set of credentials.

        ``credentials`` is a digest of the URLs, client id and secret, so that
        a token is never reused for another secret or sent to another host.
        """
        return ACRONIS_TOKEN.format(prefix=self.prefix, credentials=credentials)

    def webhook_seen(self, source: str, message_id: str) -> str:
        """String with a TTL: a webhook id already accepted, to refuse replays."""
        return WEBHOOK_SEEN.format(
            prefix=self.prefix, source=source, message_id=message_id
        )

    def pending_upsert(self, tenant_id: str) -> str:
        """String with a TTL: the id of the tenant's upsert job still queued."""
        return PENDING_UPSERT.format(prefix=self.prefix, tenant_id=tenant_id)

    def pending_reconcile(self, mode: str) -> str:
        """String with a TTL: the id of the last reconcile asked for in ``mode``."""
        return PENDING_RECONCILE.format(prefix=self.prefix, mode=mode)

    @property
    def upsert_sequence(self) -> str:
        """Hash: tenant id -> number of the tenant's latest upsert job."""
        return UPSERT_SEQUENCE.format(prefix=self.prefix)

    def tenant_lock(self, tenant_id: str) -> str:
        """Lock: held while one worker upserts the tenant."""
        return TENANT_LOCK.format(prefix=self.prefix, tenant_id=tenant_id)

    @property
    def poll_cursor(self) -> str:
        """String: the Acronis feed timestamp the next poll asks changes since."""
        return POLL_CURSOR.format(prefix=self.prefix)

    def schedule_claim(self, kind: str, slot: int) -> str:
        """String with a TTL: the job enqueued for one schedule slot (epoch)."""
        return SCHEDULE_CLAIM.format(prefix=self.prefix, kind=kind, slot=slot)

    @property
    def run_history(self) -> str:
        """List: the latest reconcile summaries in brief (JSON), newest first."""
        return RUN_HISTORY.format(prefix=self.prefix)

    def run_tally(self, run_id: str) -> str:
        """Hash with a TTL: outcome -> count of the upserts one reconcile queued."""
        return RUN_TALLY.format(prefix=self.prefix, run_id=run_id)

    def metrics(self, family: str) -> str:
        """Hash: one family of counters shared by every process, label -> value."""
        return METRICS.format(prefix=self.prefix, family=family)

    @property
    def login_limit(self) -> str:
        """Prefix of the login attempt counters (flask-limiter builds the rest)."""
        return LOGIN_LIMIT.format(prefix=self.prefix)

    def admin_session(self, sid: str) -> str:
        """String with a TTL: the admin name of one live login session."""
        return ADMIN_SESSION.format(prefix=self.prefix, sid=sid)

    @property
    def admin_session_pattern(self) -> str:
        """SCAN pattern of every admin session under this prefix, and no other."""
        prefix = _GLOB.sub(r"\\\1", self.prefix)
        return ADMIN_SESSION.format(prefix=prefix, sid="*")

    @property
    def review_accepted(self) -> str:
        """Set: tenants an admin reviewed and let the sync create a client for."""
        return REVIEW_ACCEPTED.format(prefix=self.prefix)
