"""Onboarding an AlgaPSA that already has clients: review before the first sync.

An MSP often typed its customers into AlgaPSA long before this sync, under
names that differ a little from the Acronis ones ("Acme Ltd." and "ACME
Limited"). The sync finds a client by exact name only, so without a review it
would create a second client for each. :func:`suggest` lists every tenant the
next sync would create a client for, with the unlinked clients whose names come
closest; a person then links, excludes or lets each one be created.

The ranking is pure; the wrappers below it read the remotes and the link store
of a :class:`~sync.runtime.Runtime`, so the command line and a web page share
them. Linking by hand writes nothing to AlgaPSA: the next sync brings the
client's mapped fields in step and adds the tenant id to its key field, but
keeps the client's name, which a person chose.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from rapidfuzz import fuzz, process

from sync.errors import LinkConflict, PermanentError
from sync.links import Link
from sync.planner import UUID, Action, Plan
from sync.runtime import Runtime
from sync.settings import UUID_PATTERN as UUID_TEXT

SUGGESTIONS_PER_TENANT = 3
SCORE_FLOOR = 60
# Share of the score given to the legal form; the rest is the name itself.
FORM_WEIGHT = 0.1
LINKED_BY_HAND = "linked by hand"

# Legal forms as they end a company name, each mapped to one spelling so that
# "Ltd" and "Limited" count as the same form. Dots are gone before the lookup.
LEGAL_FORMS: dict[str, str] = {
    "ltd": "ltd",
    "limited": "ltd",
    "inc": "inc",
    "incorporated": "inc",
    "corp": "corp",
    "corporation": "corp",
    "co": "co",
    "company": "co",
    "llc": "llc",
    "llp": "llp",
    "lp": "lp",
    "plc": "plc",
    "pty": "pty",
    "pte": "pte",
    "gmbh": "gmbh",
    "mbh": "gmbh",
    "ag": "ag",
    "kg": "kg",
    "ug": "ug",
    "se": "se",
    "sa": "sa",
    "sas": "sas",
    "sarl": "sarl",
    "srl": "srl",
    "spa": "spa",
    "sl": "sl",
    "bv": "bv",
    "nv": "nv",
    "ab": "ab",
    "oy": "oy",
    "as": "as",
    "aps": "aps",
    "kft": "kft",
    "sro": "sro",
}

_NOT_WORD = re.compile(r"[\W_]+")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """An unlinked AlgaPSA client whose name resembles a tenant's (score 0-100)."""

    client_id: str
    name: str
    score: int


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """A tenant the next sync would create a client for, and its best candidates."""

    tenant_id: str
    tenant_name: str
    client_name: str
    candidates: tuple[Candidate, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def split_name(name: str) -> tuple[str, tuple[str, ...]]:
    """A company name's core words and its legal forms, compared apart.

    The core is case-folded, without accents, punctuation or the legal forms
    that end the name: people drop or respell the form ("Ltd." for "Limited")
    far more often than the name, so it must not hide a match. A name that is
    nothing but a legal form keeps it as its core.
    """
    plain = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    words = _NOT_WORD.sub(" ", plain.replace(".", "")).split()
    forms: list[str] = []
    while len(words) > 1 and words[-1] in LEGAL_FORMS:
        forms.insert(0, LEGAL_FORMS[words.pop()])
    return " ".join(words), tuple(forms)


def similarity(a: str, b: str) -> int:
    """How alike two company names are, from 0 to 100.

    Names that differ only in case, punctuation or the spelling of their legal
    form score 100. Words are compared in any order (``token_sort_ratio``);
    the legal form weighs a tenth, so that between names that are otherwise
    equal the one with the same form ranks first.
    """
    return _score(split_name(a), split_name(b))


def _score(a: tuple[str, tuple[str, ...]], b: tuple[str, tuple[str, ...]]) -> int:
    core = fuzz.token_sort_ratio(a[0], b[0])
    whole = fuzz.token_sort_ratio(_joined(a), _joined(b))
    return round((1 - FORM_WEIGHT) * core + FORM_WEIGHT * whole)


def _joined(split: tuple[str, tuple[str, ...]]) -> str:
    return " ".join([split[0], *split[1]])


def unlinked_clients(
    clients: Mapping[str, Mapping[str, Any]],
    plans: Sequence[Plan],
    linked: Collection[str],
) -> dict[str, str]:
    """Client id -> name of every client no tenant holds or will hold."""
    taken = set(linked) | {plan.client_id for plan in plans if plan.client_id}
    return {
        client_id: str(client.get("client_name") or "")
        for client_id, client in clients.items()
        if client_id not in taken
    }


def suggest(
    plans: Sequence[Plan],
    clients: Mapping[str, Mapping[str, Any]],
    linked: Collection[str],
    *,
    per_tenant: int = SUGGESTIONS_PER_TENANT,
    floor: int = SCORE_FLOOR,
) -> list[Suggestion]:
    """Every planned create with its closest unlinked clients, best match first.

    A tenant's candidates score at least ``floor``; tenants whose best
    candidate scores highest come first, those without any last.
    """
    pool = _Pool(unlinked_clients(clients, plans, linked), floor)
    found = []
    for plan in plans:
        if plan.action is not Action.CREATE:
            continue
        wanted = str(plan.body.get("client_name") or plan.tenant_name)
        best = pool.closest(wanted)[:per_tenant]
        found.append(Suggestion(plan.tenant_id, plan.tenant_name, wanted, best))
    return sorted(found, key=_review_order)


class _Pool:
    """Client names split once, to be scored against many tenants."""

    def __init__(self, names: Mapping[str, str], floor: int) -> None:
        self.floor = floor
        self.ids = list(names)
        self.names = [names[client_id] for client_id in self.ids]
        self.splits = [split_name(name) for name in self.names]
        self.cores = [core for core, _ in self.splits]
        # The form moves a score by at most its weight: a core this far below
        # the floor cannot reach it, so the fast scorer can drop it unseen.
        self.cutoff = max(0.0, (floor - 100 * FORM_WEIGHT) / (1 - FORM_WEIGHT))

    def closest(self, name: str) -> tuple[Candidate, ...]:
        query = split_name(name)
        near = process.extract(
            query[0], self.cores, scorer=fuzz.token_sort_ratio,
            score_cutoff=self.cutoff, limit=None,
        )  # fmt: skip
        scored = (
            Candidate(self.ids[i], self.names[i], _score(query, self.splits[i]))
            for *_, i in near
        )
        passing = (candidate for candidate in scored if candidate.score >= self.floor)
        return tuple(sorted(passing, key=_best_first))


def _best_first(candidate: Candidate) -> tuple[int, str, str]:
    return (-candidate.score, candidate.name.casefold(), candidate.client_id)


def _review_order(suggestion: Suggestion) -> tuple[int, str, str]:
    best = suggestion.candidates[0].score if suggestion.candidates else -1
    return (-best, suggestion.tenant_name.casefold(), suggestion.tenant_id)


def foreign_tenant_ids(
    client: Mapping[str, Any], key_field: str, tenant_id: str
) -> list[str]:
    """Ids other than ``tenant_id`` written in the client's key field, in order."""
    text = client.get(key_field)
    if not isinstance(text, str):
        return []
    found = dict.fromkeys(match.lower() for match in UUID.findall(text))
    return [other for other in found if other != tenant_id.lower()]


def review(runtime: Runtime, *, floor: int = SCORE_FLOOR) -> list[Suggestion]:
    """Plan the next sync as if it could create, and suggest a client for each create.

    Link-only mode is set aside here: it turns every create into a skip, and
    those creates are what the review is about.
    """
    clients = {client["client_id"]: client for client in runtime.alga.list_clients()}
    settings = runtime.settings.model_copy(update={"link_only": False})
    engine = dataclasses.replace(runtime, settings=settings).engine()
    plans = engine.plan(clients=clients)
    linked = {link.client_id for link in runtime.links.all().values()}
    return suggest(plans, clients, linked, floor=floor)


def link_by_hand(runtime: Runtime, tenant_id: str, client_id: str) -> Link:
    """Link a tenant to an existing client after checking both; write no client.

    Raises PermanentError for an unknown or unfit tenant or client, and
    LinkConflict when either side is already linked elsewhere or the client
    carries another tenant's id. Linking a pair that is already linked
    returns the link unchanged.
    """
    for kind, value in (("tenant", tenant_id), ("client", client_id)):
        if not UUID_TEXT.fullmatch(value):
            raise PermanentError(f"{value[:60]!r} is not a {kind} id (a UUID)")
    _customer(runtime, tenant_id)
    known = runtime.links.get(tenant_id)
    if known is not None and known.client_id == client_id:
        return known
    if known is not None:
        raise LinkConflict(
            f"tenant {tenant_id} is already linked to AlgaPSA client "
            f"{known.client_id}: unlink it first (python -m sync unlink {tenant_id})",
            tenant_id=tenant_id,
        )
    client = runtime.alga.get_client(client_id)
    if client is None:
        raise PermanentError(f"AlgaPSA has no client {client_id}", tenant_id=tenant_id)
    _check_markers(runtime, client, tenant_id)
    link = Link(tenant_id, client_id, outcome=LINKED_BY_HAND, keep_name=True)
    runtime.links.claim(link)
    return link


def _customer(runtime: Runtime, tenant_id: str) -> dict[str, Any]:
    """The tenant, if Acronis has it as a customer that is not deleted."""
    tenant = runtime.acronis.get_tenant(tenant_id)
    if tenant is None:
        raise PermanentError(
            f"Acronis has no tenant {tenant_id} under the partner",
            tenant_id=tenant_id,
        )
    if tenant.get("kind") != "customer":
        raise PermanentError(
            f"tenant {tenant_id} is a {tenant.get('kind')} tenant; only customer "
            "tenants have AlgaPSA clients",
            tenant_id=tenant_id,
        )
    if tenant.get("deleted_at"):
        raise PermanentError(
            f"tenant {tenant_id} is deleted in Acronis", tenant_id=tenant_id
        )
    return tenant


def _check_markers(runtime: Runtime, client: Mapping[str, Any], tenant_id: str) -> None:
    """Refuse a client whose key field names another tenant.

    A sync would find the client by that id for the other tenant and report a
    conflict on every run.
    """
    key_field = runtime.settings.alga_key_field
    for other in foreign_tenant_ids(client, key_field, tenant_id):
        if runtime.acronis.get_tenant(other) is not None:
            raise LinkConflict(
                f"AlgaPSA client {client['client_id']} carries the id of tenant "
                f"{other} in {key_field}, so a sync takes it for that tenant: "
                f"remove that line in AlgaPSA first",
                tenant_id=tenant_id,
            )


def unlink(runtime: Runtime, tenant_id: str) -> Link:
    """Drop the tenant's link and return it; PermanentError when it has none."""
    removed = runtime.links.remove(tenant_id)
    if removed is None:
        raise PermanentError(
            f"tenant {tenant_id} is not linked to any AlgaPSA client",
            tenant_id=tenant_id,
        )
    return removed


def exclude(runtime: Runtime, tenant_id: str) -> bool:
    """Keep a tenant Acronis has out of every sync; False if it already was."""
    tenant = runtime.acronis.get_tenant(tenant_id)
    if tenant is None:
        raise PermanentError(
            f"Acronis has no tenant {tenant_id} under the partner",
            tenant_id=tenant_id,
        )
    return runtime.links.exclude(tenant_id)


def include(runtime: Runtime, tenant_id: str) -> None:
    """Let an excluded tenant be synced again; PermanentError if it was not."""
    if not runtime.links.include(tenant_id):
        raise PermanentError(
            f"tenant {tenant_id} is not excluded, so there is nothing to include",
            tenant_id=tenant_id,
        )
