"""Loading and checking mapping.yaml, and mapping tenants with it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from sync.errors import MappingError
from sync.mapping import Mapping, Mode, country_name, lookup, render, truncate
from sync.mapping_file import load_mapping, parse_mapping

ROOT = Path(__file__).resolve().parents[2]
TENANT_ID = "3f2b6c1e-0000-4000-8000-000000000001"


def build(body: str, location: str = "") -> Mapping:
    """A mapping with the two required client fields plus ``body``."""
    text = (
        "client:\n"
        "  client_name: {from: name}\n"
        "  billing_cycle: {value: monthly, on: create}\n"
        + textwrap.indent(textwrap.dedent(body), "  ")
        + textwrap.dedent(location)
    )
    return parse_mapping(text)


def problems(text: str) -> str:
    with pytest.raises(MappingError) as caught:
        parse_mapping(textwrap.dedent(text))
    return str(caught.value)


@pytest.fixture
def tenant() -> dict[str, Any]:
    return {
        "id": TENANT_ID,
        "version": 7,
        "name": "  Northwind Traders  ",
        "kind": "customer",
        "enabled": True,
        "deleted_at": None,
        "customer_id": None,
        "contact": {
            "id": "c-1",
            "types": ["primary"],
            "email": "it@northwind.example",
            "firstname": "Ana",
            "lastname": "Trujillo",
            "phone": "+1 555 0100",
            "address1": "12 Harbour Road",
            "address2": "",
            "city": "Seattle",
            "state": "WA",
            "zipcode": "98101",
            "country": "us",
            "website": "https://northwind.example",
            "industry": "Retail",
        },
        "contacts": [{"phone": "+44 20 7946 0000", "email": None}],
    }


@pytest.fixture
def default_mapping() -> Mapping:
    return load_mapping(ROOT / "mapping.yaml")


# The default file


def test_default_mapping_maps_a_realistic_tenant(default_mapping, tenant):
    mapped = default_mapping.map_tenant(tenant)

    assert mapped.tenant_id == TENANT_ID
    assert mapped.client == {
        "client_name": "Northwind Traders",
        "notes": "Synced from Acronis Cyber Protect Cloud, customer tenant "
        f"{TENANT_ID} (customer)",
        "billing_cycle": "monthly",
        "client_type": "company",
        "is_inactive": False,
        "url": "https://northwind.example",
        "properties": {"industry": "Retail"},
    }
    assert mapped.sync_fields == {"client_name", "notes", "is_inactive"}
    assert mapped.location == {
        "location_name": "Main office",
        "address_line1": "12 Harbour Road",
        "city": "Seattle",
        "state_province": "WA",
        "postal_code": "98101",
        "country_code": "US",
        "country_name": "United States",
        "phone": "+1 555 0100",
        "email": "it@northwind.example",
        "is_default": True,
    }
    assert mapped.location_missing == ()


def test_default_mapping_carries_the_tenant_id_in_notes(default_mapping):
    assert default_mapping.references_tenant_id("notes")
    assert not default_mapping.references_tenant_id("client_name")
    assert not default_mapping.references_tenant_id("no_such_field")
    assert default_mapping.source == "mapping.yaml"


def test_default_mapping_leaves_out_missing_contact_data(default_mapping, tenant):
    tenant["contact"] = {"website": "", "industry": None, "city": "Lyon"}

    mapped = default_mapping.map_tenant(tenant)

    assert "url" not in mapped.client
    assert "properties" not in mapped.client
    assert mapped.location is None
    assert mapped.location_missing == ("address_line1", "country_code", "country_name")


def test_default_mapping_marks_a_disabled_tenant_inactive(default_mapping, tenant):
    tenant["enabled"] = False

    assert default_mapping.map_tenant(tenant).client["is_inactive"] is True


def test_describe_lists_every_rule(default_mapping):
    rules = default_mapping.describe()

    first = rules[0]
    assert first == {
        "section": "client",
        "target": "client_name",
        "source": "from",
        "expression": "name",
        "transforms": ["trim", "truncate"],
        "on": "sync",
    }
    targets = [(rule["section"], rule["target"]) for rule in rules]
    assert ("location", "country_name") in targets
    assert len(targets) == 7 + 11


# Sources


def test_from_follows_dotted_paths_and_list_indexes(tenant):
    mapping = build(
        """
        url: {from: contacts.0.phone}
        notes: {from: contacts.5.phone}
        tax_id_number: {from: contact.email.deeper}
        """
    )

    client = mapping.map_tenant(tenant).client

    assert client["url"] == "+44 20 7946 0000"
    assert "notes" not in client
    assert "tax_id_number" not in client


def test_lookup_handles_missing_and_odd_steps():
    data = {"a": {"b": [{"c": 1}]}, "s": "text"}

    assert lookup(data, "a.b.0.c") == 1
    assert lookup(data, "a.b.1.c") is None
    assert lookup(data, "a.x") is None
    assert lookup(data, "s.0") is None


def test_template_fills_placeholders(tenant):
    mapping = build('notes: {template: "{name}/{contact.city} #{version} {{id}}"}\n')

    notes = mapping.map_tenant(tenant).client["notes"]

    assert notes == "  Northwind Traders  /Seattle #7 {id}"


def test_template_with_a_missing_path_leaves_it_empty(tenant):
    assert render("{contact.city}, {contact.nowhere}!", tenant) == "Seattle, !"


def test_template_with_no_value_at_all_is_no_value(tenant):
    mapping = build('notes: {template: "Fax: {contact.fax}"}\n')

    assert render("Fax: {contact.fax}", tenant) is None
    assert "notes" not in mapping.map_tenant(tenant).client


def test_template_never_formats_tenant_data(tenant):
    tenant["name"] = "{0.__class__} {id}"

    assert render("[{name}]", tenant) == "[{0.__class__} {id}]"


def test_template_writes_booleans_as_words(tenant):
    assert render("{enabled}", tenant) == "true"


def test_value_is_a_constant_copied_per_tenant(tenant):
    mapping = build("is_tax_exempt: {value: false}\n")

    first = mapping.map_tenant(tenant).client
    second = mapping.map_tenant(tenant).client

    assert first["is_tax_exempt"] is False
    assert first is not second


def test_value_null_is_left_out(tenant):
    mapping = build("notes: {value: null}\n")

    assert "notes" not in mapping.map_tenant(tenant).client


def test_dotted_client_targets_write_inside_properties(tenant):
    mapping = build(
        """
        properties.industry: {from: contact.industry}
        properties.website: {from: contact.website, on: create}
        """
    )

    mapped = mapping.map_tenant(tenant)

    assert mapped.client["properties"] == {
        "industry": "Retail",
        "website": "https://northwind.example",
    }
    assert "properties.industry" in mapped.sync_fields
    assert "properties.website" not in mapped.sync_fields


def test_on_defaults_to_sync(tenant):
    mapping = build("notes: {value: hello}\n")

    assert "notes" in mapping.map_tenant(tenant).sync_fields
    assert mapping.describe()[-1]["on"] == Mode.SYNC


# Transforms


@pytest.mark.parametrize(
    ("transforms", "value", "expected"),
    [
        ("[trim]", "  a b  ", "a b"),
        ("[trim]", "   ", None),
        ("[lower]", "MiXeD", "mixed"),
        ("[upper]", "MiXeD", "MIXED"),
        ("[{truncate: 3}]", "abcdef", "abc"),
        ("[{truncate: 3}]", "ab", "ab"),
        ("[{default: n/a}]", None, "n/a"),
        ("[{default: n/a}]", "given", "given"),
        ("[trim, {default: ''}]", "  ", ""),
        ("[country_name]", "de", "Germany"),
        ("[country_name]", "GBR", "United Kingdom"),
        ("[country_name]", "ZZ", None),
        ("[upper, {truncate: 2}, lower]", "abc", "ab"),
        ("[trim]", 42, 42),
    ],
)
def test_transforms(transforms, value, expected):
    mapping = build(f"notes: {{from: field, transforms: {transforms}}}\n")

    mapped = mapping.map_tenant({"id": "t", "name": "n", "field": value})

    assert mapped.client.get("notes") == expected


def test_empty_text_from_acronis_is_no_value():
    mapping = build("notes: {from: field}\n")

    assert "notes" not in mapping.map_tenant({"name": "n", "field": ""}).client


def test_default_opts_in_to_clearing():
    mapping = build("notes: {from: field, transforms: [{default: ''}]}\n")

    mapped = mapping.map_tenant({"name": "n", "field": None})

    assert mapped.client["notes"] == ""
    assert "notes" in mapped.sync_fields


@pytest.mark.parametrize(
    ("enabled", "expected"), [(True, False), (False, True), (None, None)]
)
def test_negate(enabled, expected):
    mapping = build("is_inactive: {from: enabled, transforms: [negate]}\n")

    mapped = mapping.map_tenant({"name": "n", "enabled": enabled})

    assert mapped.client.get("is_inactive") is expected


def test_negate_of_text_fails_for_that_tenant():
    mapping = build("is_inactive: {from: enabled, transforms: [negate]}\n")

    with pytest.raises(MappingError) as caught:
        mapping.map_tenant({"id": "t-9", "name": "n", "enabled": "yes"})

    assert caught.value.tenant_id == "t-9"
    assert "client.is_inactive: negate needs true or false" in str(caught.value)


def test_truncate_cuts_a_300_character_name_to_the_limit(default_mapping, tenant):
    tenant["name"] = "N" * 300

    assert default_mapping.map_tenant(tenant).client["client_name"] == "N" * 255


def test_truncate_counts_emoji_as_two_units_and_never_splits_them():
    assert truncate("ab😀", 3) == "ab"
    assert truncate("ab😀", 4) == "ab😀"
    assert truncate("😀" * 200, 255) == "😀" * 127


def test_truncate_drops_blanks_the_cut_exposes():
    assert truncate("abc   def", 5) == "abc"


def test_emoji_and_cjk_survive(default_mapping, tenant):
    tenant["name"] = " 東京テック株式会社 🚀 "

    assert default_mapping.map_tenant(tenant).client["client_name"] == (
        "東京テック株式会社 🚀"
    )


def test_country_name_prefers_the_common_name():
    assert country_name("TW") == "Taiwan"
    assert country_name("bo") == "Bolivia"
    assert country_name(" ") is None


# Mapping failures for one tenant


def test_an_empty_name_is_an_error_naming_the_tenant(default_mapping, tenant):
    tenant["name"] = "   "

    with pytest.raises(MappingError) as caught:
        default_mapping.map_tenant(tenant)

    assert caught.value.tenant_id == TENANT_ID
    assert "empty client_name" in str(caught.value)


def test_a_location_needs_every_required_field(tenant):
    mapping = build(
        "",
        """
        location:
          city: {from: contact.city}
          country_code: {value: US}
          country_name: {value: United States}
          address_line1: {from: contact.address2}
        """,
    )

    mapped = mapping.map_tenant(tenant)

    assert mapped.location is None
    assert mapped.location_missing == ("address_line1",)


def test_no_location_section_means_no_location(tenant):
    mapped = build("").map_tenant(tenant)

    assert mapped.location is None
    assert mapped.location_missing == ()


# Checking the file


def test_load_mapping_reports_an_unreadable_file(tmp_path):
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "absent.yaml")


def test_load_mapping_names_the_file(tmp_path):
    path = tmp_path / "custom.yaml"
    path.write_text("client:\n  client_name: {from: name}\n  notes: {value: 1}\n")

    with pytest.raises(MappingError, match=r"^custom\.yaml line 1: client: billing"):
        load_mapping(path)


def test_unknown_transform_is_reported_with_its_line():
    message = problems(
        """
        client:
          client_name: {from: name}
          billing_cycle: {value: monthly}
          notes:
            from: name
            transforms:
              - trim
              - shout
        """
    )

    assert message.startswith("mapping.yaml line 9: client.notes.transforms.1:")
    assert "unknown transform 'shout'" in message


def test_two_sources_are_reported():
    message = problems(
        """
        client:
          client_name: {from: name, value: fixed}
          billing_cycle: {value: monthly}
        """
    )

    assert message == (
        "mapping.yaml line 3: client.client_name: "
        "a rule needs exactly one of from, template or value (found 2)"
    )


def test_no_source_is_reported():
    message = problems(
        """
        client:
          client_name: {transforms: [trim]}
          billing_cycle: {value: monthly}
        """
    )

    assert "line 3: client.client_name: a rule needs exactly one" in message
    assert "(found none)" in message


def test_unknown_keys_are_reported():
    message = problems(
        """
        client:
          client_name: {from: name, form: name}
          billing_cycle: {value: monthly}
        contacts: {}
        """
    )

    assert "line 3: client.client_name.form: unknown key 'form'" in message
    assert "line 5: contacts: unknown key 'contacts': use client and location" in (
        message
    )


def test_bad_on_is_reported():
    message = problems(
        """
        client:
          client_name: {from: name}
          billing_cycle: {value: monthly, on: always}
        """
    )

    assert message == (
        "mapping.yaml line 4: client.billing_cycle.on: on must be create or sync"
    )


@pytest.mark.parametrize("target", ["email", "phone_no", "address", "tags"])
def test_client_fields_algapsa_drops_are_refused(target):
    message = problems(
        f"""
        client:
          client_name: {{from: name}}
          billing_cycle: {{value: monthly}}
          {target}: {{from: contact.email}}
        """
    )

    assert message.startswith(f"mapping.yaml line 5: client.{target}: ")


def test_unknown_client_field_and_property_are_refused():
    message = problems(
        """
        client:
          client_name: {from: name}
          billing_cycle: {value: monthly}
          nickname: {from: name}
          properties.acronis_tenant_id: {from: id}
        """
    )

    assert "line 5: client.nickname: 'nickname' is not a client field" in message
    assert "line 6: client.properties.acronis_tenant_id: AlgaPSA drops" in message


def test_unknown_location_field_and_on_are_refused():
    message = problems(
        """
        client:
          client_name: {from: name}
          billing_cycle: {value: monthly}
        location:
          street: {from: contact.address1}
          city: {from: contact.city, on: sync}
        """
    )

    assert "line 6: location.street: 'street' is not a location field" in message
    assert "line 7: location.city: on does not apply" in message


def test_required_client_fields_are_required():
    message = problems(
        """
        client:
          notes: {value: hi}
        """
    )

    assert "line 2: client: client_name is missing" in message
    assert "line 2: client: billing_cycle is missing" in message


def test_truncate_without_a_known_limit_needs_a_length():
    message = problems(
        """
        client:
          client_name: {from: name, transforms: [truncate]}
          billing_cycle: {value: monthly}
          notes: {from: name, transforms: [truncate]}
        """
    )

    assert message == (
        "mapping.yaml line 5: client.notes: "
        "AlgaPSA sets no length for notes: write {truncate: N}"
    )


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("{truncate: 0}", "positive whole number"),
        ("{truncate: ten}", "positive whole number"),
        ("{trim: 1}", "trim takes no argument"),
        ("default", "default needs a value"),
        ("[1, 2]", "a transform is a name"),
    ],
)
def test_bad_transform_arguments(step, expected):
    message = problems(
        f"""
        client:
          client_name: {{from: name}}
          billing_cycle: {{value: monthly}}
          notes: {{from: name, transforms: [{step}]}}
        """
    )

    assert message.startswith("mapping.yaml line 5: client.notes.transforms.0:")
    assert expected in message


def test_bad_paths_and_placeholders_are_refused():
    message = problems(
        """
        client:
          client_name: {from: "contact..name"}
          billing_cycle: {value: monthly}
          notes: {template: "hello {contact name}"}
        """
    )

    assert "line 3: client.client_name.from: 'contact..name' is not" in message
    assert "line 5: client.notes.template: placeholder {contact name}" in message


def test_constants_outside_algapsa_choices_are_refused():
    message = problems(
        """
        client:
          client_name: {from: name}
          billing_cycle: {value: fortnightly}
        """
    )

    assert "line 4: client.billing_cycle: 'fortnightly' is not a billing_cycle" in (
        message
    )


def test_a_key_written_twice_is_refused():
    message = problems(
        """
        client:
          client_name: {from: name}
          billing_cycle: {value: monthly}
          client_name: {from: id}
        """
    )

    assert message == "mapping.yaml line 5: client.client_name: is written twice"


def test_yaml_syntax_errors_name_the_line():
    message = problems(
        """
        client:
          client_name: {from: name
          billing_cycle: {value: monthly}
        """
    )

    assert message.startswith("mapping.yaml line ")
    assert "not valid YAML" in message


def test_an_empty_file_is_refused():
    assert problems("# nothing yet\n") == (
        "mapping.yaml line 1: the file is empty: it needs a client section"
    )


def test_a_file_without_client_section_is_refused():
    message = problems("location: {}\n")

    assert message == "mapping.yaml line 1: the file needs a client section"


def test_yes_and_no_stay_words():
    mapping = build("notes: {value: no, on: create}\n")

    assert mapping.map_tenant({"name": "n"}).client["notes"] == "no"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n", "line 1: expected a map with a client section"),
        (
            "client:\n  client_name: name\n",
            "line 2: client.client_name: expected a map such as {from: name}",
        ),
        (
            "client:\n  client_name: {from: name, transforms: trim}\n",
            "line 2: client.client_name.transforms: expected a list",
        ),
    ],
)
def test_wrong_shapes_are_explained(text, expected):
    assert expected in problems(text)
