"""The sandbox's generated tenant tree: deterministic, exact, varied, fast."""

from __future__ import annotations

import time
import unicodedata
from collections import Counter
from typing import Any

import pytest

from sandbox import data
from sandbox.state import Options, SandboxState


def customers_of(tree: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [tenant for tenant in tree if tenant["kind"] == "customer"]


def scripts_in(names: list[str]) -> set[str]:
    """The Unicode script families found in ``names`` (by character name)."""
    found = set()
    for name in names:
        for char in name:
            label = unicodedata.name(char, "")
            for script in (
                "CYRILLIC",
                "GREEK",
                "CJK",
                "ARABIC",
                "HEBREW",
                "DEVANAGARI",
            ):
                if label.startswith(script):
                    found.add(script)
            if ord(char) > 0x1F000:
                found.add("EMOJI")
            if "WITH" in label and "LATIN" in label:
                found.add("LATIN ACCENTED")
    return found


@pytest.fixture(scope="module")
def big_tree():
    started = time.perf_counter()
    tree = data.generate_tenants(10_000, seed=11)
    return tree, time.perf_counter() - started


def test_same_seed_same_tree_other_seed_other_tree():
    first = data.generate_tenants(60, seed=5, duplicate_names=2)
    again = data.generate_tenants(60, seed=5, duplicate_names=2)
    other = data.generate_tenants(60, seed=6, duplicate_names=2)

    assert first == again
    assert [t["id"] for t in first] != [t["id"] for t in other]
    assert data.partner_root_id(5) == first[0]["id"] != data.partner_root_id(6)


def test_ten_thousand_customers_exactly_and_quickly(big_tree):
    tree, seconds = big_tree

    assert len(customers_of(tree)) == 10_000
    assert seconds < 2.0


def test_tree_has_partners_folders_units_and_several_depths(big_tree):
    tree, _ = big_tree
    state_levels: dict[str, int] = {}
    for tenant in tree:
        parent = tenant["parent_id"]
        state_levels[tenant["id"]] = (
            0 if parent == tenant["id"] else state_levels[parent] + 1
        )
    kinds = Counter(tenant["kind"] for tenant in tree)
    depths = Counter(state_levels[t["id"]] for t in customers_of(tree))

    assert tree[0]["parent_id"] == tree[0]["id"]
    assert kinds["partner"] > 2 and kinds["folder"] > 2 and kinds["unit"] > 0
    assert len(depths) >= 3


def test_some_disabled_some_deleted(big_tree):
    customers = customers_of(big_tree[0])
    disabled = sum(not c["enabled"] for c in customers)
    deleted = sum(c["_deleted_us"] is not None for c in customers)

    assert 300 < disabled < 700
    assert 150 < deleted < 450


def test_names_mix_scripts_case_twins_and_long_names(big_tree):
    names = [c["name"] for c in customers_of(big_tree[0])]
    lowered = Counter(name.lower() for name in names)

    assert len(set(names)) == len(names)
    assert any(count > 1 for count in lowered.values())
    assert any(len(name) > 255 for name in names)
    assert scripts_in(names) >= {
        "CYRILLIC",
        "GREEK",
        "CJK",
        "ARABIC",
        "HEBREW",
        "DEVANAGARI",
        "EMOJI",
        "LATIN ACCENTED",
    }


def test_exact_duplicates_only_when_asked():
    plain = [c["name"] for c in customers_of(data.generate_tenants(200, seed=3))]
    doubled = data.generate_tenants(200, seed=3, duplicate_names=4)
    counts = Counter(c["name"] for c in customers_of(doubled))

    assert len(set(plain)) == 200
    assert sorted(n for n in counts.values() if n > 1) == [2, 2, 2, 2]


def test_contacts_complete_partial_and_missing(big_tree):
    contacts = [c["_contacts"] for c in customers_of(big_tree[0])]
    complete = [c[0] for c in contacts if c and c[0]["email"]]
    partial = [c[0] for c in contacts if c and c[0]["email"] == ""]

    assert sum(not c for c in contacts) > 500
    assert partial and all(p["country"] is None for p in partial)
    sample = complete[0]
    for field in (
        "address1",
        "city",
        "zipcode",
        "phone",
        "email",
        "website",
        "industry",
    ):
        assert sample[field]
    assert len(sample["country"]) == 2 and sample["country"].isupper()


def test_alga_clients_are_preloaded_and_unrelated():
    state = SandboxState(Options(tenants=20, seed=2, alga_clients=15))
    tenant_names = {t["name"] for t in state.tenants.values()}

    assert len(state.clients) == 15
    assert not tenant_names & set(state.client_names)
