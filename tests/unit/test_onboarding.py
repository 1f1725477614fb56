"""Onboarding: ranking look-alike clients, link-only mode, exclusions, hand links."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import fakeredis
import pytest

from sync import onboarding
from sync.errors import LinkConflict, PermanentError
from sync.http import CallCounter
from sync.keys import Keys
from sync.links import Link, LinkStore, MemoryLinkStore, RedisLinkStore
from sync.mapping import Mapping
from sync.mapping_file import load_mapping
from sync.onboarding import Candidate, similarity, split_name, suggest
from sync.planner import EXCLUDED, LINK_ONLY, Action, Plan, PlanContext, plan_all
from sync.report import Outcome
from sync.runtime import Runtime
from sync.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
T1 = "11111111-1111-4111-8111-111111111111"
T2 = "22222222-2222-4222-8222-222222222222"
C1 = "c1c1c1c1-0000-4000-8000-000000000001"
C2 = "c2c2c2c2-0000-4000-8000-000000000002"
C3 = "c3c3c3c3-0000-4000-8000-000000000003"
C4 = "c4c4c4c4-0000-4000-8000-000000000004"
C5 = "c5c5c5c5-0000-4000-8000-000000000005"


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return load_mapping(ROOT / "mapping.yaml")


def tenant(
    tenant_id: str = T1, name: str = "Acme Ltd.", **extra: Any
) -> dict[str, Any]:
    base = {"id": tenant_id, "name": name, "kind": "customer", "enabled": True}
    return {**base, "deleted_at": None, **extra}


def client(client_id: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"client_id": client_id, "client_name": name, "notes": None, **extra}


def create(tenant_id: str, name: str) -> Plan:
    return Plan(tenant_id, name, Action.CREATE, "", body={"client_name": name})


def by_id(*clients: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["client_id"]: c for c in clients}


# Names and their similarity


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Acme Ltd.", ("acme", ("ltd",))),
        ("ACME Limited", ("acme", ("ltd",))),
        ("  Acme,  Inc ", ("acme", ("inc",))),
        ("Société Générale S.A.", ("societe generale", ("sa",))),
        ("Müller GmbH & Co. KG", ("muller", ("gmbh", "co", "kg"))),
        ("Limited", ("limited", ())),
        ("Ltd Consulting", ("ltd consulting", ())),
    ],
)
def test_split_name_drops_case_accents_punctuation_and_trailing_legal_forms(
    name, expected
):
    assert split_name(name) == expected


def test_the_same_name_with_another_spelling_of_its_legal_form_scores_100():
    assert similarity("Acme Ltd.", "ACME Limited") == 100
    assert similarity("Acme Ltd.", "acme ltd") == 100


def test_another_legal_form_or_none_ranks_below_the_same_form_but_passes():
    corp = similarity("Acme Ltd.", "Acme Corp")
    bare = similarity("Acme Ltd.", "Acme")

    assert onboarding.SCORE_FLOOR <= corp < 100
    assert onboarding.SCORE_FLOOR <= bare < 100


def test_an_unrelated_name_stays_below_the_floor():
    assert similarity("Acme Ltd.", "Zenith Systems") < onboarding.SCORE_FLOOR
    assert similarity("Acme Ltd.", "Zenith") < onboarding.SCORE_FLOOR


def test_word_order_does_not_matter():
    assert similarity("Widgets Acme Ltd", "Acme Widgets Limited") == 100


# Suggestions


def test_suggest_ranks_look_alikes_best_first_and_drops_the_unrelated():
    clients = by_id(
        client(C1, "Acme Corp"),
        client(C2, "Zenith"),
        client(C3, "ACME Limited"),
    )

    (found,) = suggest([create(T1, "Acme Ltd.")], clients, linked=())

    assert found.tenant_id == T1
    assert found.client_name == "Acme Ltd."
    assert [c.client_id for c in found.candidates] == [C3, C1]
    assert found.candidates[0] == Candidate(C3, "ACME Limited", 100)
    assert found.candidates[1].score < 100


def test_suggest_offers_only_clients_no_tenant_holds():
    clients = by_id(
        client(C1, "Acme Ltd"),
        client(C2, "Acme Limited"),
        client(C3, "Acme Corp"),
    )
    held = Plan(T2, "Other", Action.UNCHANGED, "", client_id=C2)

    (found,) = suggest([create(T1, "Acme Ltd."), held], clients, linked={C1})

    assert [c.client_id for c in found.candidates] == [C3]


def test_suggest_keeps_three_candidates_at_most():
    names = ["Acme", "Acme Ltd", "ACME Limited", "Acme Inc", "Acme Corp"]
    ids = [C1, C2, C3, C4, C5]
    clients = by_id(*(client(i, n) for i, n in zip(ids, names, strict=True)))

    (found,) = suggest([create(T1, "Acme Ltd.")], clients, linked=())

    assert len(found.candidates) == onboarding.SUGGESTIONS_PER_TENANT
    assert {c.client_id for c in found.candidates[:2]} == {C2, C3}
    scores = [c.score for c in found.candidates]
    assert scores == sorted(scores, reverse=True)


def test_suggest_lists_every_create_and_puts_those_without_candidates_last():
    plans = [
        create(T2, "Brand New Customer"),
        Plan(T1, "Skipped", Action.SKIP, "excluded by an admin"),
        create(T1, "Acme Ltd."),
    ]

    found = suggest(plans, by_id(client(C1, "ACME Limited")), linked=())

    assert [s.tenant_id for s in found] == [T1, T2]
    assert found[1].candidates == ()
    assert found[0].to_dict()["candidates"][0]["client_id"] == C1


# Link-only mode and exclusions in the planner


def test_link_only_mode_skips_a_create_and_counts_it_as_skipped(mapping):
    ctx = PlanContext(clients={}, links={}, link_only=True)

    (plan,) = plan_all([tenant()], mapping, ctx)

    assert plan.action is Action.SKIP
    assert plan.reason == LINK_ONLY
    assert "python -m sync suggest" in plan.reason
    assert not plan.body
    assert Outcome.from_plan(plan).result == "skipped"


def test_link_only_mode_still_updates_a_linked_client(mapping):
    stale = client(C1, "Old name", notes=f"tenant {T1}")
    ctx = PlanContext(clients=by_id(stale), links={T1: C1}, link_only=True)

    (plan,) = plan_all([tenant()], mapping, ctx)

    assert plan.action is Action.UPDATE
    assert plan.client_id == C1
    assert plan.body["client_name"] == "Acme Ltd."


def test_link_only_mode_still_links_a_client_found_by_exact_name(mapping):
    ctx = PlanContext(clients=by_id(client(C1, "Acme Ltd.")), links={}, link_only=True)

    (plan,) = plan_all([tenant()], mapping, ctx)

    assert plan.action in (Action.UPDATE, Action.UNCHANGED)
    assert plan.client_id == C1
    assert plan.recovers_link


def test_a_client_linked_by_hand_keeps_its_name_while_the_rest_follows(mapping):
    hand_made = client(C1, "ACME Limited", notes="VIP, call first")
    ctx = PlanContext(
        clients=by_id(hand_made), links={T1: C1}, own_names=frozenset({T1})
    )

    (plan,) = plan_all([tenant()], mapping, ctx)

    assert plan.action is Action.UPDATE
    assert "client_name" not in plan.body
    assert plan.body["notes"].startswith("VIP, call first\n")
    assert T1 in plan.body["notes"]


def test_a_client_linked_by_the_sync_follows_the_acronis_name(mapping):
    ctx = PlanContext(clients=by_id(client(C1, "ACME Limited")), links={T1: C1})

    (plan,) = plan_all([tenant()], mapping, ctx)

    assert plan.body["client_name"] == "Acme Ltd."


def test_an_excluded_tenant_is_skipped_even_when_linked(mapping):
    stale = client(C1, "Old name")
    ctx = PlanContext(clients=by_id(stale), links={T1: C1}, excluded=frozenset({T1}))

    (plan,) = plan_all([tenant(T1.upper())], mapping, ctx)

    assert plan.action is Action.SKIP
    assert plan.reason == EXCLUDED
    assert plan.client_id is None


def test_an_excluded_tenant_does_not_stop_others(mapping):
    ctx = PlanContext(clients={}, links={}, excluded=frozenset({T1}))

    plans = plan_all([tenant(T1), tenant(T2, "Beta")], mapping, ctx)

    assert [p.action for p in plans] == [Action.SKIP, Action.CREATE]


# The exclusions store, in memory and in (fake) Redis


@pytest.fixture(params=["memory", "redis"])
def store(request) -> LinkStore:
    if request.param == "memory":
        return MemoryLinkStore()
    return RedisLinkStore(fakeredis.FakeRedis(), Keys("test"))


def test_exclusions_are_kept_in_lower_case_and_can_be_undone(store):
    assert store.excluded() == set()

    assert store.exclude(T1.upper()) is True
    assert store.exclude(T1) is False
    assert store.excluded() == {T1}

    assert store.include(T1.upper()) is True
    assert store.include(T1) is False
    assert store.excluded() == set()


def test_exclusions_leave_links_alone(store):
    store.claim(Link(T1, C1))

    store.exclude(T1)
    store.clear()

    assert store.all() == {}
    assert store.excluded() == {T1}


# Linking by hand, against stand-in remotes


@dataclass
class FakeAcronis:
    tenants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get_tenant(self, tenant_id: str) -> dict[str, Any] | None:
        return self.tenants.get(tenant_id)


@dataclass
class FakeAlga:
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get_client(self, client_id: str) -> dict[str, Any] | None:
        return self.clients.get(client_id)


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {
            "ACRONIS_BASE_URL": "http://127.0.0.1:9/api/2",
            "ACRONIS_CLIENT_ID": "client",
            "ACRONIS_CLIENT_SECRET": "secret",
            "ACRONIS_TENANT_ID": str(uuid.uuid4()),
            "ALGA_BASE_URL": "http://127.0.0.1:9/api/v1",
            "ALGA_API_TOKEN": "token",
        }
    )


@pytest.fixture
def runtime(settings, mapping) -> Runtime:
    acronis = FakeAcronis({T1: tenant(T1), T2: tenant(T2, "Beta")})
    alga = FakeAlga(by_id(client(C1, "ACME Limited"), client(C2, "Beta")))
    return Runtime(
        settings=settings,
        counter=CallCounter(),
        redis=None,
        links=MemoryLinkStore(),
        acronis=cast(Any, acronis),
        alga=cast(Any, alga),
        mapping=mapping,
    )


def test_link_by_hand_claims_the_client(runtime):
    link = onboarding.link_by_hand(runtime, T1, C1)

    assert link.client_id == C1
    assert link.outcome == onboarding.LINKED_BY_HAND
    assert link.keep_name
    assert Link.from_json(link.to_json()) == link
    assert runtime.links.tenant_of(C1) == T1
    assert onboarding.link_by_hand(runtime, T1, C1) == link


def test_link_by_hand_refuses_a_client_linked_to_another_tenant(runtime):
    runtime.links.claim(Link(T2, C1))

    with pytest.raises(LinkConflict, match=f"already linked to tenant {T2}"):
        onboarding.link_by_hand(runtime, T1, C1)

    assert runtime.links.get(T1) is None


def test_link_by_hand_refuses_a_tenant_linked_to_another_client(runtime):
    runtime.links.claim(Link(T1, C2))

    with pytest.raises(LinkConflict, match="unlink it first"):
        onboarding.link_by_hand(runtime, T1, C1)

    assert runtime.links.get(T1) == Link(T1, C2)


def test_link_by_hand_refuses_unknown_ids(runtime):
    unknown = "00000000-0000-4000-8000-000000000000"

    with pytest.raises(PermanentError, match="Acronis has no tenant"):
        onboarding.link_by_hand(runtime, unknown, C1)
    with pytest.raises(PermanentError, match="AlgaPSA has no client"):
        onboarding.link_by_hand(runtime, T1, unknown)

    assert runtime.links.all() == {}


def test_link_by_hand_refuses_a_deleted_or_non_customer_tenant(runtime):
    runtime.acronis.tenants[T1]["deleted_at"] = "2026-01-01T00:00:00Z"
    runtime.acronis.tenants[T2]["kind"] = "partner"

    with pytest.raises(PermanentError, match="deleted"):
        onboarding.link_by_hand(runtime, T1, C1)
    with pytest.raises(PermanentError, match="only customer tenants"):
        onboarding.link_by_hand(runtime, T2, C2)


def test_link_by_hand_refuses_a_client_that_carries_another_tenants_id(runtime):
    runtime.alga.clients[C1]["notes"] = f"VIP\nSynced from Acronis, tenant {T2}"

    with pytest.raises(LinkConflict, match=f"carries the id of tenant {T2}"):
        onboarding.link_by_hand(runtime, T1, C1)


def test_a_stray_id_in_the_notes_does_not_block_a_link(runtime):
    stray = "99999999-9999-4999-8999-999999999999"
    runtime.alga.clients[C1]["notes"] = f"old ticket {stray}; tenant {T1.upper()}"

    assert onboarding.link_by_hand(runtime, T1, C1).client_id == C1


def test_unlink_drops_the_link_and_refuses_a_tenant_without_one(runtime):
    onboarding.link_by_hand(runtime, T1, C1)

    assert onboarding.unlink(runtime, T1).client_id == C1
    assert runtime.links.tenant_of(C1) is None
    with pytest.raises(PermanentError, match="not linked"):
        onboarding.unlink(runtime, T1)


def test_exclude_and_include_check_the_tenant(runtime):
    unknown = "00000000-0000-4000-8000-000000000000"

    assert onboarding.exclude(runtime, T1) is True
    assert onboarding.exclude(runtime, T1) is False
    assert runtime.links.excluded() == {T1}
    with pytest.raises(PermanentError, match="Acronis has no tenant"):
        onboarding.exclude(runtime, unknown)

    onboarding.include(runtime, T1)
    with pytest.raises(PermanentError, match="not excluded"):
        onboarding.include(runtime, T1)


@pytest.mark.parametrize("client_id", ["x" * 200_000, f"{C1}\n", "../clients"])
def test_link_by_hand_refuses_a_client_id_that_is_not_a_uuid(runtime, client_id):
    with pytest.raises(PermanentError, match="is not a client id"):
        onboarding.link_by_hand(runtime, T1, client_id)

    assert runtime.links.get(T1) is None
