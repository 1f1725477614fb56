"""Planning: finding each tenant's client and deciding what to do with it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from sync.diff import FieldChange
from sync.mapping import Mapping
from sync.mapping_file import load_mapping, parse_mapping
from sync.planner import (
    Action,
    LinkSource,
    Plan,
    PlanContext,
    fingerprint,
    plan_all,
)
from sync.settings import TenantPolicy

ROOT = Path(__file__).resolve().parents[2]
T1 = "11111111-1111-4111-8111-111111111111"
T2 = "22222222-2222-4222-8222-222222222222"
C1 = "c1c1c1c1-0000-4000-8000-000000000001"
C2 = "c2c2c2c2-0000-4000-8000-000000000002"


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return load_mapping(ROOT / "mapping.yaml")


def tenant(tenant_id: str = T1, name: str = "Acme", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": tenant_id,
        "name": name,
        "kind": "customer",
        "enabled": True,
        "deleted_at": None,
        "contact": {"industry": "Retail", "website": "https://acme.example"},
    }
    return {**base, **extra}


def notes_for(tenant_id: str) -> str:
    return (
        "Synced from Acronis Cyber Protect Cloud, customer tenant "
        f"{tenant_id} (customer)"
    )


def client(
    client_id: str = C1, name: str = "Acme", tenant_id: str | None = T1, **extra: Any
) -> dict[str, Any]:
    """An AlgaPSA client as the server returns it, in step with ``tenant()``."""
    base: dict[str, Any] = {
        "client_id": client_id,
        "client_name": name,
        "notes": notes_for(tenant_id) if tenant_id else None,
        "is_inactive": False,
        "billing_cycle": "monthly",
        "client_type": "company",
        "url": "",
        "properties": None,
        "credit_balance": "0",
    }
    return {**base, **extra}


def context(
    *clients: dict[str, Any], links: dict[str, str] | None = None, **policies: Any
) -> PlanContext:
    return PlanContext(
        clients={c["client_id"]: c for c in clients},
        links=links or {},
        key_field="notes",
        disabled_policy=policies.get("disabled", TenantPolicy.DEACTIVATE),
        deleted_policy=policies.get("deleted", TenantPolicy.DEACTIVATE),
    )


def plan_one(mapping: Mapping, one: dict[str, Any], ctx: PlanContext) -> Plan:
    (plan,) = plan_all([one], mapping, ctx)
    return plan


# Which tenants are planned


def test_a_folder_is_skipped(mapping):
    plan = plan_one(mapping, tenant(kind="folder"), context())

    assert plan.action is Action.SKIP
    assert plan.reason == "not a customer tenant (kind=folder)"
    assert plan.location is None


def test_a_tenant_without_id_is_invalid(mapping):
    plan = plan_one(mapping, tenant(tenant_id=""), context())

    assert plan.action is Action.INVALID


def test_a_mapping_failure_is_invalid_and_does_not_stop_the_others(mapping):
    plans = plan_all([tenant(T1, name="  "), tenant(T2, "Beta")], mapping, context())

    assert [p.action for p in plans] == [Action.INVALID, Action.CREATE]
    assert "empty client_name" in plans[0].reason
    assert plans[0].tenant_id == T1


# Create


def test_a_new_tenant_gets_a_full_create_body(mapping):
    plan = plan_one(mapping, tenant(), context())

    assert plan.action is Action.CREATE
    assert plan.client_id is None
    assert plan.link is None
    assert plan.body == {
        "client_name": "Acme",
        "notes": notes_for(T1),
        "billing_cycle": "monthly",
        "client_type": "company",
        "is_inactive": False,
        "url": "https://acme.example",
        "properties": {"industry": "Retail"},
    }
    assert plan.location is None
    assert plan.fingerprint == fingerprint(mapping.map_tenant(tenant()))
    assert len(plan.fingerprint) == 64


def test_the_create_body_is_a_copy(mapping):
    plan = plan_one(mapping, tenant(), context())
    plan.body["properties"]["industry"] = "changed"

    assert plan_one(mapping, tenant(), context()).body["properties"] == {
        "industry": "Retail"
    }


def test_a_create_carries_the_mapped_location(mapping):
    contact = {"address1": "1 Main St", "city": "Springfield", "country": "US"}

    plan = plan_one(mapping, tenant(contact=contact), context())

    assert plan.location is not None
    assert plan.location["country_name"] == "United States"


def test_two_tenants_with_one_name_create_once(mapping):
    plans = plan_all([tenant(T1, "Acme "), tenant(T2, " Acme")], mapping, context())

    assert plans[0].action is Action.CREATE
    assert plans[1].action is Action.CONFLICT
    assert plans[1].reason == (
        f"another tenant, {T1}, already takes the name 'Acme' in AlgaPSA; "
        "rename one of them in Acronis"
    )


def test_names_differing_in_case_are_different_clients(mapping):
    plans = plan_all([tenant(T1, "Acme"), tenant(T2, "ACME")], mapping, context())

    assert [p.action for p in plans] == [Action.CREATE, Action.CREATE]


# Finding the client


def test_the_stored_link_wins(mapping):
    ctx = context(client(name="Renamed by hand", tenant_id=None), links={T1: C1})

    plan = plan_one(mapping, tenant(), ctx)

    assert plan.action is Action.UPDATE
    assert plan.client_id == C1
    assert plan.link is LinkSource.STORE


def test_a_stale_link_falls_through_and_says_so(mapping):
    ctx = context(links={T1: C2})

    plan = plan_one(mapping, tenant(), ctx)

    assert plan.action is Action.CREATE
    assert plan.reason.startswith(f"the linked client {C2} no longer exists")


def test_the_marker_finds_a_renamed_client(mapping):
    ctx = context(client(name="Acme Holdings", notes=f"see {T1.upper()} here"))

    plan = plan_one(mapping, tenant(), ctx)

    assert plan.client_id == C1
    assert plan.link is LinkSource.MARKER
    assert plan.action is Action.UPDATE
    assert {c.field for c in plan.changes} == {"client_name", "notes"}


def test_the_marker_works_in_another_key_field(mapping):
    marked = client(name="Other", tenant_id=None, url=f"https://x/{T1}")
    ctx = PlanContext(clients={C1: marked}, links={}, key_field="url")

    plan = plan_one(mapping, tenant(), ctx)

    assert plan.link is LinkSource.MARKER


def test_two_clients_with_one_marker_conflict(mapping):
    ctx = context(client(C1, "Acme"), client(C2, "Acme 2"))

    plan = plan_one(mapping, tenant(), ctx)

    assert plan.action is Action.CONFLICT
    assert C1 in plan.reason and C2 in plan.reason


def test_an_exact_name_finds_an_unmarked_client(mapping):
    ctx = context(client(name=" Acme ", tenant_id=None))

    plan = plan_one(mapping, tenant(), ctx)

    assert plan.link is LinkSource.NAME
    assert plan.client_id == C1
    assert plan.changes == (FieldChange("notes", None, notes_for(T1)),)
    assert plan.body == {"notes": notes_for(T1)}


def test_a_name_match_is_case_sensitive(mapping):
    ctx = context(client(name="ACME", tenant_id=None))

    assert plan_one(mapping, tenant(), ctx).action is Action.CREATE


def test_a_found_client_in_step_is_unchanged_with_its_link(mapping):
    ctx = context(client(name="Acme"))

    plan = plan_one(mapping, tenant(), ctx)

    assert plan.action is Action.UNCHANGED
    assert plan.link is LinkSource.MARKER
    assert plan.body == {}
    assert plan.fingerprint


def test_a_name_match_linked_to_another_tenant_conflicts(mapping):
    ctx = context(client(name="Acme", tenant_id=None), links={T2: C1})

    plan = plan_one(mapping, tenant(), ctx)

    assert plan.action is Action.CONFLICT
    assert plan.client_id == C1
    assert T1 in plan.reason and T2 in plan.reason


def test_a_name_match_marked_for_another_tenant_conflicts(mapping):
    ctx = context(client(name="Acme", tenant_id=T2))

    plans = plan_all([tenant(T1), tenant(T2, "Beta")], mapping, ctx)

    assert plans[0].action is Action.CONFLICT
    assert T2 in plans[0].reason
    assert plans[1].link is LinkSource.MARKER


def test_an_unknown_uuid_in_notes_does_not_block_a_name_match(mapping):
    stray = str(uuid.uuid4())
    ctx = context(client(name="Acme", tenant_id=None, notes=f"ticket {stray}"))

    plan = plan_one(mapping, tenant(), ctx)

    assert plan.link is LinkSource.NAME


def test_a_marker_on_a_client_linked_elsewhere_conflicts(mapping):
    ctx = context(client(name="Acme"), links={T2: C1})

    plan = plan_one(mapping, tenant(), ctx)

    assert plan.action is Action.CONFLICT
    assert f"already linked to tenant {T2}" in plan.reason


def test_a_client_claimed_earlier_in_the_pass_conflicts(mapping):
    ctx = context(client(name="Acme", tenant_id=None))

    plans = plan_all([tenant(T1), tenant(T2)], mapping, ctx)

    assert plans[0].link is LinkSource.NAME
    assert plans[1].action is Action.CONFLICT
    assert T1 in plans[1].reason and T2 in plans[1].reason


# Comparing


def test_only_sync_fields_are_compared(mapping):
    drifted = client(billing_cycle="annually", url="https://mine", client_type="x")

    plan = plan_one(mapping, tenant(), context(drifted))

    assert plan.action is Action.UNCHANGED


def test_a_changed_name_updates_only_that_field(mapping):
    plan = plan_one(mapping, tenant(name="Acme Ltd"), context(client()))

    assert plan.action is Action.UPDATE
    assert plan.body == {"client_name": "Acme Ltd"}
    assert plan.changes == (FieldChange("client_name", "Acme", "Acme Ltd"),)
    assert plan.reason == (
        "found by the tenant id in the client; client_name differs from Acronis"
    )


def test_none_and_empty_text_are_equal():
    plain = parse_mapping(
        "client:\n"
        "  client_name: {from: name}\n"
        "  billing_cycle: {value: monthly, on: create}\n"
        "  url: {from: site, transforms: [{default: ''}]}\n"
    )
    ctx = context(client(url=None), links={T1: C1})

    plan = plan_one(plain, tenant(), ctx)

    assert plan.action is Action.UNCHANGED


def test_a_number_equals_the_same_float():
    plain = parse_mapping(
        "client:\n"
        "  client_name: {from: name}\n"
        "  billing_cycle: {value: monthly, on: create}\n"
        "  credit_limit: {value: 100}\n"
        "  is_tax_exempt: {value: true}\n"
    )
    ctx = context(client(credit_limit=100.0, is_tax_exempt=1), links={T1: C1})

    plan = plan_one(plain, tenant(), ctx)

    assert plan.changes == (FieldChange("is_tax_exempt", 1, True),)


def test_a_properties_change_sends_the_merged_object():
    with_props = parse_mapping(
        "client:\n"
        "  client_name: {from: name}\n"
        "  billing_cycle: {value: monthly, on: create}\n"
        "  properties.industry: {from: contact.industry}\n"
        "  properties.company_size: {value: '10-50'}\n"
    )
    kept = {"industry": "Old", "company_size": "10-50", "website": "https://a"}
    ctx = context(client(properties=kept), links={T1: C1})

    plan = plan_one(with_props, tenant(), ctx)

    assert plan.action is Action.UPDATE
    assert plan.changes == (FieldChange("properties.industry", "Old", "Retail"),)
    assert plan.body == {
        "properties": {
            "industry": "Retail",
            "company_size": "10-50",
            "website": "https://a",
        }
    }
    assert kept["industry"] == "Old"


def test_properties_null_on_the_client_are_filled():
    with_props = parse_mapping(
        "client:\n"
        "  client_name: {from: name}\n"
        "  billing_cycle: {value: monthly, on: create}\n"
        "  properties.industry: {from: contact.industry}\n"
    )

    plan = plan_one(with_props, tenant(), context(client(), links={T1: C1}))

    assert plan.body == {"properties": {"industry": "Retail"}}


def test_a_rename_onto_another_clients_name_conflicts(mapping):
    ctx = context(client(C1, "Acme"), client(C2, "Acme Ltd", tenant_id=None))

    plan = plan_one(mapping, tenant(name="Acme Ltd"), ctx)

    assert plan.action is Action.CONFLICT
    assert f"would clash with AlgaPSA client {C2}" in plan.reason


# The key field keeps what a person wrote


def test_hand_written_notes_are_kept_and_the_marker_appended(mapping):
    ctx = context(client(tenant_id=None, notes="VIP customer, call first\n\n"))

    plan = plan_one(mapping, tenant(), ctx)

    merged = f"VIP customer, call first\n{notes_for(T1)}"
    assert plan.link is LinkSource.NAME
    assert plan.action is Action.UPDATE
    assert plan.changes == (
        FieldChange("notes", "VIP customer, call first\n\n", merged),
    )
    assert plan.body == {"notes": merged}


def test_a_second_plan_over_merged_notes_is_unchanged(mapping):
    hand_made = client(tenant_id=None, notes="VIP customer, call first")
    first = plan_one(mapping, tenant(), context(hand_made))

    second = plan_one(mapping, tenant(), context({**hand_made, **first.body}))

    assert second.action is Action.UNCHANGED
    assert second.link is LinkSource.MARKER


def test_an_edited_note_on_our_client_keeps_the_words_and_gets_the_marker_back(
    mapping,
):
    ctx = context(client(notes="moved to the Berlin office"), links={T1: C1})

    plan = plan_one(mapping, tenant(), ctx)

    assert plan.body == {"notes": f"moved to the Berlin office\n{notes_for(T1)}"}


def test_notes_that_hold_the_marker_among_other_lines_are_unchanged(mapping):
    notes = f"VIP customer\n{notes_for(T1)}\nbilled yearly"

    plan = plan_one(mapping, tenant(), context(client(notes=notes)))

    assert plan.action is Action.UNCHANGED


def test_a_changed_template_replaces_the_old_marker_line(mapping):
    notes = f"VIP customer\nAcronis tenant {T1.upper()}, imported\nbilled yearly"

    plan = plan_one(mapping, tenant(), context(client(notes=notes)))

    assert plan.link is LinkSource.MARKER
    assert plan.changes == (
        FieldChange("notes", notes, f"VIP customer\nbilled yearly\n{notes_for(T1)}"),
    )


def test_notes_holding_only_an_old_marker_become_the_marker(mapping):
    plan = plan_one(mapping, tenant(), context(client(notes=f"tenant {T1}")))

    assert plan.body == {"notes": notes_for(T1)}


def test_another_key_field_keeps_its_text_too(mapping):
    stamped = parse_mapping(
        "client:\n"
        "  client_name: {from: name}\n"
        "  billing_cycle: {value: monthly, on: create}\n"
        "  url: {template: 'acronis:{id}'}\n"
    )
    ours = client(tenant_id=None, url="https://acme.example")
    ctx = PlanContext(clients={C1: ours}, links={T1: C1}, key_field="url")

    plan = plan_one(stamped, tenant(), ctx)

    assert plan.body == {"url": f"https://acme.example\nacronis:{T1}"}


# Disabled and deleted tenants


def test_a_disabled_tenant_deactivates_its_client(mapping):
    plan = plan_one(mapping, tenant(enabled=False), context(client()))

    assert plan.action is Action.UPDATE
    assert plan.body == {"is_inactive": True}


def test_a_disabled_tenant_forces_inactive_even_if_not_mapped():
    plain = parse_mapping(
        "client:\n"
        "  client_name: {from: name}\n"
        "  billing_cycle: {value: monthly, on: create}\n"
    )

    plan = plan_one(plain, tenant(enabled=False), context(client(), links={T1: C1}))

    assert plan.changes == (FieldChange("is_inactive", False, True),)


def test_a_disabled_tenant_without_client_is_skipped(mapping):
    plan = plan_one(mapping, tenant(enabled=False), context())

    assert plan.action is Action.SKIP
    assert plan.reason == "disabled in Acronis and not in AlgaPSA"


def test_a_disabled_tenant_leaves_a_client_found_by_name_alone(mapping):
    ctx = context(client(tenant_id=None, notes="VIP customer, call first"))

    plan = plan_one(mapping, tenant(enabled=False), ctx)

    assert plan.action is Action.SKIP
    assert plan.reason == (
        "disabled in Acronis; the AlgaPSA client of the same name was made by "
        "hand, so it is left alone"
    )
    assert plan.client_id is None
    assert plan.link is None
    assert plan.body == {}


def test_a_disabled_tenant_does_not_hold_on_to_a_client_found_by_name(mapping):
    ctx = context(client(tenant_id=None))

    plans = plan_all([tenant(T1, enabled=False), tenant(T2)], mapping, ctx)

    assert plans[0].action is Action.SKIP
    assert plans[1].link is LinkSource.NAME
    assert plans[1].client_id == C1


def test_a_disabled_tenant_deactivates_a_linked_hand_made_client(mapping):
    hand_made = client(tenant_id=None, notes="VIP customer, call first")

    plan = plan_one(mapping, tenant(enabled=False), context(hand_made, links={T1: C1}))

    assert plan.link is LinkSource.STORE
    assert plan.body == {
        "is_inactive": True,
        "notes": f"VIP customer, call first\n{notes_for(T1)}",
    }


def test_a_disabled_tenant_deactivates_a_client_found_by_marker(mapping):
    plan = plan_one(mapping, tenant(enabled=False), context(client()))

    assert plan.link is LinkSource.MARKER
    assert plan.changes == (FieldChange("is_inactive", False, True),)


def test_disabled_tenants_can_be_ignored(mapping):
    ctx = context(client(), disabled=TenantPolicy.IGNORE)

    plan = plan_one(mapping, tenant(enabled=False), ctx)

    assert plan.action is Action.SKIP
    assert "ignored" in plan.reason


def test_a_deleted_tenant_deactivates_only(mapping):
    deleted = tenant(name="Acme Ltd", deleted_at="2026-01-02T03:04:05Z")

    plan = plan_one(mapping, deleted, context(client()))

    assert plan.action is Action.UPDATE
    assert plan.body == {"is_inactive": True}
    assert plan.changes == (FieldChange("is_inactive", False, True),)
    assert plan.link is LinkSource.MARKER


def test_a_deleted_tenant_with_an_inactive_client_is_unchanged(mapping):
    deleted = tenant(deleted_at="2026-01-02T03:04:05Z")

    plan = plan_one(mapping, deleted, context(client(is_inactive=True)))

    assert plan.action is Action.UNCHANGED


def test_a_deleted_tenant_without_client_is_skipped(mapping):
    deleted = tenant(deleted_at="2026-01-02T03:04:05Z")

    plan = plan_one(mapping, deleted, context())

    assert plan.action is Action.SKIP
    assert plan.reason == "deleted in Acronis and not in AlgaPSA"


def test_a_deleted_tenant_never_takes_a_client_by_name(mapping):
    deleted = tenant(deleted_at="2026-01-02T03:04:05Z")

    plan = plan_one(mapping, deleted, context(client(tenant_id=None)))

    assert plan.action is Action.SKIP


def test_deleted_tenants_can_be_ignored(mapping):
    deleted = tenant(deleted_at="2026-01-02T03:04:05Z")
    ctx = context(client(), deleted=TenantPolicy.IGNORE)

    assert plan_one(mapping, deleted, ctx).action is Action.SKIP


# Fingerprint and scale


def test_the_fingerprint_ignores_key_order_and_follows_content(mapping):
    first = mapping.map_tenant(tenant())
    shuffled = type(first)(
        first.tenant_id,
        dict(reversed(list(first.client.items()))),
        first.sync_fields,
        first.location,
        first.location_missing,
    )
    renamed = mapping.map_tenant(tenant(name="Other"))

    assert fingerprint(first) == fingerprint(shuffled)
    assert fingerprint(first) != fingerprint(renamed)


def test_ten_thousand_tenants_plan_quickly(mapping):
    count = 10_000
    tenant_ids = [str(uuid.UUID(int=i + 1)) for i in range(count)]
    tenants = [tenant(t, f"Customer {i}") for i, t in enumerate(tenant_ids)]
    clients = [
        client(f"client-{i}", f"Customer {i}", tenant_id=t if i % 2 else None)
        for i, t in enumerate(tenant_ids)
    ]
    links = {t: f"client-{i}" for i, t in enumerate(tenant_ids) if i % 3 == 0}
    ctx = context(*clients, links=links)

    started = time.perf_counter()
    plans = plan_all(tenants, mapping, ctx)
    elapsed = time.perf_counter() - started

    print(f"planned {count} tenants against {count} clients in {elapsed:.2f}s")
    assert len(plans) == count
    assert {p.action for p in plans} <= {Action.UNCHANGED, Action.UPDATE}
    assert all(p.client_id == f"client-{i}" for i, p in enumerate(plans))
