"""Every Redis key the service uses, built from named templates in one place."""

from __future__ import annotations

LINKS = "{prefix}:links"
LINK_CLIENTS = "{prefix}:link-clients"
ACRONIS_TOKEN = "{prefix}:acronis-token:{client_id}"
LAST_RUN = "{prefix}:last-run"
WEBHOOK_SEEN = "{prefix}:webhook-seen:{source}:{message_id}"


class Keys:
    """Key names under one prefix, so that several installs can share a Redis."""

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

    def acronis_token(self, client_id: str) -> str:
        """String with a TTL: the cached access token of one API client."""
        return ACRONIS_TOKEN.format(prefix=self.prefix, client_id=client_id)

    def webhook_seen(self, source: str, message_id: str) -> str:
        """String with a TTL: a webhook id already accepted, to refuse replays."""
        return WEBHOOK_SEEN.format(
            prefix=self.prefix, source=source, message_id=message_id
        )
