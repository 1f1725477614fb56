"""Deterministic sample data: an Acronis tenant tree and unrelated Alga clients.

The same seed always gives the same ids, names and contacts. The tree has a
partner root, nested sub-partners and folders, exactly the requested number
of customers at several depths and units under some customers. Names mix
scripts and emoji, and include case-only twins and names too long for
AlgaPSA; exact duplicates appear only when asked for.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

Tenant = dict[str, Any]

# 2025-06-01T00:00:00Z: generated stamps lie before it, so they never depend
# on when the sandbox runs.
ANCHOR_US = 1_748_736_000_000_000
THREE_YEARS_US = 3 * 365 * 86_400 * 1_000_000

# One line per script: first words | second words | legal forms, each list
# split on "/". A name takes one of each. CJK names have no spaces; CJK and
# Arabic names put the legal form first. Letters that look Latin are the
# point of the Cyrillic and Greek lines, hence their RUF001 exemptions.
SCRIPT_WORDS = (
    "Acme/Northwind/Blue River/Summit/Pioneer/Harbor/Granite/Maple/Silver Oak"
    "/Redwood/Lakeside/Evergreen|Consulting/Systems/Dental/Logistics/Legal"
    "/Holdings/Bakery/Labs/Engineering/Realty/Media/Clinic|Inc./LLC/Ltd/Co./Group",
    "Über/Café/Société/Crème/Öko/Señor/Ålborg/Łąka/Brügge/Ærø/Château/Façade"
    "|Lösungen/Conseil/Transportes/Bäckerei/Ingeniería/Rådgivning/Élevage"
    "/Dvořák Audio/Müllerei/Peñas|GmbH/SARL/S.L./AB/Sp. z o.o.",
    "Север/Ромашка/Альфа/Восток/Гранит/Звезда/Берёза"
    "|Строй/Торг/Логистика/Сервис/Медиа/Технологии|ООО/АО/ИП",  # noqa: RUF001
    "Ακρόπολη/Όλυμπος/Αιγαίο/Ερμής/Ήλιος/Δελφοί"
    "|Τεχνική/Εμπορική/Ναυτιλιακή/Συμβουλευτική/Πληροφορική|Α.Ε./Ε.Π.Ε./Ο.Ε.",  # noqa: RUF001
    "東京/大阪/北京/上海/深圳/京都/名古屋|電子/物流/商事/科技/建設/食品/薬品"
    "|株式会社/有限公司/合同会社",
    "النور/الأمل/الخليج/الشروق/الواحة/الفجر"
    "|للتجارة/للمقاولات/للتقنية/للخدمات/للاستشارات|شركة/مؤسسة",
    'אור/גליל/כרמל/נגב/ים/ארז|מערכות/תוכנה/בנייה/סחר/ייעוץ|בע"מ/שותפות',
    "भारत/गंगा/सूर्य/हिमालय/कमल/नर्मदा|टेक/ट्रेडर्स/इंडस्ट्रीज/सेवाएं/सॉफ्टवेयर|प्रा. लि./लिमिटेड",
)
SCRIPTS = tuple(
    tuple(part.split("/") for part in line.split("|")) for line in SCRIPT_WORDS
)
CJK = 4
FORM_FIRST = frozenset({CJK, 5})
# Half the names are plain English; the other scripts share the rest.
SCRIPT_WEIGHTS = (10, 3, 2, 1, 1, 1, 1, 1)
EMOJI = ("🚀", "☕", "🌍", "🛠️", "🐧", "✨")
FIRST_NAMES = ("Anna", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro")
LAST_NAMES = ("Smith", "Garcia", "Novak", "Ivanova", "Tanaka", "Haddad", "Sharma")
INDUSTRIES = ("IT", "Healthcare", "Legal", "Manufacturing", "Retail", "Finance")
# country, city, state, zipcode, phone prefix
PLACES = tuple(
    tuple(line.split("|"))
    for line in (
        "US|Springfield|IL|62701|+1 217",
        "DE|Berlin||10115|+49 30",
        "FR|Lyon||69001|+33 4",
        "ES|Sevilla||41001|+34 954",
        "GB|Leeds||LS1 4AP|+44 113",
        "JP|東京||100-0001|+81 3",
        "RU|Москва||101000|+7 495",
        "GR|Αθήνα||105 57|+30 21",
        "IL|Tel Aviv||6100000|+972 3",
        "IN|Mumbai|MH|400001|+91 22",
        "EG|Cairo||11511|+20 2",
        "BR|São Paulo|SP|01000-000|+55 11",
        "SE|Malmö||211 20|+46 40",
        "PL|Kraków||30-001|+48 12",
    )
)
CONTACT_FIELDS = (
    "email",
    "firstname",
    "lastname",
    "title",
    "phone",
    "fax",
    "address1",
    "address2",
    "city",
    "state",
    "zipcode",
    "country",
    "website",
    "industry",
    "organization_size",
    "language",
)


def seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


BRAND_UUID = seeded_uuid(random.Random("brand"))
IDP_UUID = seeded_uuid(random.Random("identity-provider"))


def partner_root_id(seed: int) -> str:
    """The partner tenant at the top of the generated tree, for ``seed``."""
    return seeded_uuid(random.Random(f"partner-root-{seed}"))


def alga_tenant_id(seed: int) -> str:
    """The AlgaPSA tenant that owns every sandbox client, for ``seed``."""
    return seeded_uuid(random.Random(f"alga-tenant-{seed}"))


def new_tenant(
    tenant_id: str,
    parent_id: str,
    kind: str,
    name: str,
    created_us: int,
    updated_us: int | None = None,
) -> Tenant:
    """A tenant record with every field Acronis returns at ``lod=full``.

    Stamps are kept in microseconds under ``_``-prefixed keys; the API
    formats them on the way out.
    """
    return {
        "id": tenant_id,
        "version": 1,
        "name": name,
        "kind": kind,
        "parent_id": parent_id,
        "enabled": True,
        "customer_type": "default",
        "customer_id": None,
        "brand_id": 1,
        "brand_uuid": BRAND_UUID,
        "brand_enabled": True,
        "barrier": 0,
        "internal_tag": None,
        "language": "en",
        "owner_id": None,
        "has_children": False,
        "default_idp_id": IDP_UUID,
        "update_lock": {"enabled": False, "owner_id": None},
        "ancestral_access": True,
        "mfa_status": "disabled",
        "pricing_mode": "production",
        "external_operation_status": None,
        "production_start_date": None,
        "offering_items": [],
        "_created_us": created_us,
        "_updated_us": created_us if updated_us is None else updated_us,
        "_deleted_us": None,
        "_contacts": [],
    }


def make_contact(rng: random.Random, index: int, tenant_id: str, kind: str) -> Any:
    """A contact: complete, partly empty strings, or None for no contact."""
    if kind == "none":
        return None
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    country, city, state, zipcode, prefix = rng.choice(PLACES)
    contact = {
        "id": seeded_uuid(rng),
        "tenant_id": tenant_id,
        "user_id": None,
        "types": ["legal", "primary", "billing"],
        "email": f"{first}.{last}.{index}@customer{index}.example.com".lower(),
        "firstname": first,
        "lastname": last,
        "title": rng.choice(("", "CEO", "CTO")),
        "phone": f"{prefix} {rng.randrange(1000000, 9999999)}",
        "fax": None,
        "address1": f"{rng.randrange(1, 400)} Market Street",
        "address2": "",
        "city": city,
        "state": state,
        "zipcode": zipcode,
        "country": country,
        "website": f"https://customer{index}.example.com",
        "industry": rng.choice(INDUSTRIES),
        "organization_size": "10-49",
        "language": "en",
    }
    if kind == "partial":
        for field in ("email", "phone", "address1", "website", "zipcode"):
            contact[field] = ""
        contact["industry"] = None
        contact["country"] = None
    return contact


def _name_maker(rng: random.Random) -> Any:
    """Return a function giving a fresh, unique company name on each call."""
    used: set[str] = set()

    def make() -> str:
        script = rng.choices(range(len(SCRIPTS)), SCRIPT_WEIGHTS)[0]
        firsts, seconds, forms = SCRIPTS[script]
        words = [rng.choice(firsts), rng.choice(seconds)]
        form = rng.choice(forms)
        parts = [form, *words] if script in FORM_FIRST else [*words, form]
        name = ("" if script == CJK else " ").join(parts)
        if rng.random() < 0.03:
            name = f"{name} {rng.choice(EMOJI)}"
        base, number = name, 2
        while name in used:
            name, number = f"{base} {number}", number + 1
        used.add(name)
        return name

    return make


def _containers(rng: random.Random, customers: int, root: Tenant) -> list[Tenant]:
    """Sub-partners (nested up to three deep) and folders under the root."""
    made: list[Tenant] = []
    partners = [root]
    depth = {root["id"]: 0}
    for number in range(max(2, customers // 400)):
        parent = rng.choice([p for p in partners if depth[p["id"]] < 3])
        made.append(_child(rng, parent, "partner", f"Reseller {number + 1}"))
        partners.append(made[-1])
        depth[made[-1]["id"]] = depth[parent["id"]] + 1
    for number in range(max(2, customers // 300)):
        made.append(_child(rng, rng.choice(partners), "folder", f"Folder {number + 1}"))
    return made


def _child(rng: random.Random, parent: Tenant, kind: str, name: str) -> Tenant:
    created = ANCHOR_US - rng.randrange(THREE_YEARS_US)
    updated = created + rng.randrange(ANCHOR_US - created + 1)
    tenant = new_tenant(seeded_uuid(rng), parent["id"], kind, name, created, updated)
    tenant["version"] = rng.randrange(1, 20)
    return tenant


def _special_names(rng: random.Random, names: list[str], duplicates: int) -> None:
    """Case-only twins, over-long names and, if asked, exact duplicates."""
    count = len(names)
    twins = max(1, count // 250) if count >= 2 else 0
    longs = max(1, count // 500)
    pairs = min(duplicates, count // 2)
    picks = rng.sample(range(count), min(count, 2 * (twins + pairs) + longs))
    for position in range(twins):
        source, target = picks[2 * position], picks[2 * position + 1]
        names[source] = f"{LAST_NAMES[position % len(LAST_NAMES)]} Partners {position}"
        names[target] = names[source].upper()
    offset = 2 * twins
    for position in range(pairs):
        names[picks[offset + 2 * position + 1]] = names[picks[offset + 2 * position]]
    for pick in picks[offset + 2 * pairs :]:
        names[pick] = " ".join([names[pick]] + ["Regional Services Company"] * 12)


def generate_tenants(
    customers: int, seed: int, duplicate_names: int = 0
) -> list[Tenant]:
    """The whole tree for ``seed``, parents before children.

    Exactly ``customers`` tenants are customers (about 3% of them deleted
    and 5% disabled); ``duplicate_names`` pairs of customers share a name.
    """
    rng = random.Random(seed)
    root_id = partner_root_id(seed)
    root = new_tenant(
        root_id, root_id, "partner", "Sandbox Partner", ANCHOR_US - THREE_YEARS_US
    )
    tree = [root, *_containers(rng, customers, root)]
    parents = tree[:]
    make_name = _name_maker(rng)
    names = [make_name() for _ in range(customers)]
    _special_names(rng, names, duplicate_names)
    units: list[Tenant] = []
    for index, name in enumerate(names):
        parent = root if rng.random() < 0.3 else rng.choice(parents)
        customer = _customer(rng, parent, name, index)
        tree.append(customer)
        if rng.random() < 0.08:
            units.extend(
                _child(rng, customer, "unit", f"Unit {n + 1}")
                for n in range(rng.randrange(1, 3))
            )
    return tree + units


def _customer(rng: random.Random, parent: Tenant, name: str, index: int) -> Tenant:
    customer = _child(rng, parent, "customer", name)
    customer["customer_type"] = rng.choice(
        ("default", "default", "small_office", "enterprise")
    )
    customer["pricing_mode"] = rng.choices(
        ("production", "trial", "suspended"), (17, 2, 1)
    )[0]
    customer["language"] = rng.choice(("en", "en", "de", "fr", "es", "ja"))
    customer["mfa_status"] = rng.choice(("disabled", "enabled"))
    if rng.random() < 0.1:
        customer["customer_id"] = f"CRM-{index:05d}"
    roll = rng.random()
    customer["enabled"] = roll >= 0.05
    if roll >= 0.97:
        customer["_deleted_us"] = customer["_updated_us"]
    variant = rng.choices(("full", "partial", "none"), (7, 2, 1))[0]
    contact = make_contact(rng, index, customer["id"], variant)
    customer["_contacts"] = [] if contact is None else [contact]
    return customer


def generate_alga_clients(count: int, seed: int) -> list[dict[str, Any]]:
    """Bodies for ``count`` AlgaPSA clients that no Acronis tenant matches."""
    rng = random.Random(f"alga-clients-{seed}")
    cycles = ("monthly", "monthly", "quarterly", "annually")
    return [
        {
            "client_name": f"Walk-in {rng.choice(LAST_NAMES)} {number + 1:04d}",
            "billing_cycle": rng.choice(cycles),
            "notes": "entered by hand",
            "is_inactive": rng.random() < 0.1,
        }
        for number in range(count)
    ]
