"""The shipped taxonomy is the whole of taxonomy.md: every code, German labels word for word, stable codes.

Statistics and stored cases depend on these codes, so a code that disappears or changes is a test failure,
not a silent migration.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service.taxonomy import Channel, LegalRelevance, Taxonomy, load_taxonomy

POLICIES = Path(__file__).resolve().parents[2] / "policies"

# Copied from taxonomy.md, "Vorfallart / Incident type": code -> German label, exactly.
INCIDENT_TYPES_DE = {
    "A": "Verbale/schriftliche Anfeindung",
    "A1": "Beleidigung",
    "A2": "Üble Nachrede, Verleumdung",
    "A3": "Bedrohung",
    "A3a": "Todesdrohung",
    "A3b": "Gewalt",
    "A3c": "sexualisierte Gewalt",
    "A3d": "gegen Familie",
    "A3e": "gegen Eigentum",
    "A4": "Nötigung, Erpressung",
    "A5": "Nachstellung (Stalking)",
    "A6": "Volksverhetzung",
    "A7": "Sexuelle Belästigung, sexualisierte Herabwürdigung",
    "A8": "Diskriminierung (nicht strafbar)",
    "A9": "Veröffentlichung privater Daten, Feindesliste, Doxxing",
    "A10": "Koordinierte Kampagne, Shitstorm, Massenzuschriften",
    "A11": "Einschüchterndes Aufsuchen (Wohnung, Büro), Versammlung vor Privathaus",
    "A12": "Störung von Sitzungen, Sprechstunden, Veranstaltungen",
    "A13": "Verstörende Zusendungen (Gegenstände, Bilder)",
    "B": "Digitale Angriffe (technisch)",
    "B1": "Account-Übernahme, Hacking",
    "B2": "Identitätsmissbrauch, Fake-Profile",
    "B3": "Manipulierte oder intime Bilder (Deepfakes)",
    "C": "Sachbeschädigung",
    "C1": "Fahrzeug",
    "C2": "Wohnhaus, Grundstück",
    "C3": "Büro, Rathaus",
    "C4": "Wahlkampfstand, Plakate",
    "C5": "Schmierereien, Graffiti",
    "C6": "Brandstiftung",
    "D": "Körperlicher Angriff",
    "D1": "Bedrängen",
    "D2": "Anspucken",
    "D3": "Schubsen",
    "D4": "Schlagen, Treten",
    "D5": "Angriff mit Gegenstand oder Waffe",
    "D6": "(Versuchte) Tötung, lebensgefährliche Gewalt",
    "X": "Sonstiges",
    "X1": "Sonstiges",
}

SEVERITY_DE = {
    "1": "Extreme Gewalt",
    "2": "Angriff",
    "3": "Gezielte Sachbeschädigung",
    "4": "Bedrohung",
    "5": "Verletzendes Verhalten",
    "6": "Massenzuschriften, Propaganda",
}

CHANNELS_DE = {
    "in_person": "Persönlich",
    "in_person.town_hall": "Rathaus, Amtsräume",
    "in_person.surgery": "Bürgersprechstunde",
    "in_person.council_meeting": "Ratssitzung, Ausschuss",
    "in_person.public_event": "öffentliche Veranstaltung",
    "in_person.campaign_stand": "Wahlkampfstand",
    "in_person.public_space": "öffentlicher Raum",
    "in_person.home": "am Wohnort",
    "in_person.shop_leisure": "Geschäft, Freizeit",
    "phone": "Telefon",
    "letter": "Brief, Fax, Paket",
    "email": "E-Mail",
    "messenger": "Messenger, SMS",
    "social_media": "Soziale Netzwerke",
    "social_media.public_post": "öffentlicher Beitrag, Kommentar",
    "social_media.direct_message": "Direktnachricht",
    "social_media.group": "Gruppe, Kanal",
    "web": "Online-Bewertung, Website, Forum",
    "press": "Presse, Flugblatt, Aushang",
}

# Targets and offices: taxonomy.md's labels in the project's one gender-fair style (pair forms instead of the
# gender star, docs/language.md; issue 15). taxonomy.md is to follow.
TARGETS_DE = {
    "self": "Person selbst",
    "partner": "Partnerin oder Partner",
    "children": "Kinder",
    "other_family": "weitere Angehörige",
    "staff": "Mitarbeitende (Büro, Verwaltung)",
    "colleagues": "Fraktion, Kolleginnen und Kollegen",
    "property": "Eigentum",
    "municipal_building": "Dienstgebäude",
    "party_org": "Partei, Organisation",
}

OFFICES_DE = {
    "mayor_fulltime": "(Ober-)Bürgermeisterin oder (Ober-)Bürgermeister (hauptamtlich)",
    "mayor_volunteer": "Bürgermeisterin oder Bürgermeister (ehrenamtlich)",
    "local_mayor": (
        "Orts- oder Stadtteilbürgermeisterin oder -bürgermeister, Ortsvorsteherin oder Ortsvorsteher"
    ),
    "district_administrator": "Landrätin oder Landrat",
    "elected_deputy": (
        "Beigeordnete oder Beigeordneter, Dezernentin oder Dezernent (Wahlbeamtin oder Wahlbeamter)"
    ),
    "council_member": "Mitglied Gemeinderat, Stadtrat, Stadtverordnetenversammlung",
    "district_council_member": "Mitglied Kreistag",
    "local_council_member": "Bezirksvertretung, Ortsbeirat, Ortschaftsrat, Bezirksverordnete",
    "coopted_member": (
        "sachkundige Bürgerin oder sachkundiger Bürger, "
        "Ausschuss- oder Beiratsmitglied (z. B. Integrationsbeirat)"
    ),
    "candidate": "Kandidierende",
    "municipal_employee": "kommunale Beschäftigte",
    "project_volunteer": "Ehrenamtliche in kommunalen Projekten (Integration, Geflüchtetenhilfe)",
    "mandate_staff": "Mitarbeitende von Mandatsträgerinnen und Mandatsträgern",
}

# Count of items per list in taxonomy.md, not counting "other" (every open list has one).
LIST_SIZES = {
    "perpetrator.familiarity": 4,
    "perpetrator.residence": 3,
    "perpetrator.number": 3,
    "motives": 11,
    "bias": 9,
    "triggers": 7,  # + "Sonstiges / other", which the design lists here itself
    "consequences": 19,
    "responses": 10,
    "proceedings": 9,
    "support_needs": 10,
    "municipality_size": 4,
    "legal_relevance": 3,
}


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy(POLICIES)


def test_every_incident_type_of_the_design_is_present_with_its_german_label(taxonomy: Taxonomy) -> None:
    assert list(taxonomy.all_type_codes()) == list(INCIDENT_TYPES_DE)
    for code, label in INCIDENT_TYPES_DE.items():
        assert taxonomy.label("incident_types", code, "de") == label


def test_reports_carry_types_not_group_headings(taxonomy: Taxonomy) -> None:
    reportable = taxonomy.valid_codes("incident_types")
    assert reportable == frozenset(INCIDENT_TYPES_DE) - {"A", "B", "C", "D", "X"}
    assert taxonomy.group_codes() == ("A", "B", "C", "D", "X")
    assert "A3" in reportable  # a threat that fits none of a-e


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("severity_groups", SEVERITY_DE),
        ("channels", CHANNELS_DE),
        ("targets", TARGETS_DE),
        ("offices", OFFICES_DE),
    ],
)
def test_german_labels_are_those_of_the_design(
    kind: str, expected: dict[str, str], taxonomy: Taxonomy
) -> None:
    for code, label in expected.items():
        assert taxonomy.label(kind, code, "de") == label


@pytest.mark.parametrize(("kind", "size"), sorted(LIST_SIZES.items()))
def test_lists_are_complete(kind: str, size: int, taxonomy: Taxonomy) -> None:
    codes = taxonomy.valid_codes(kind) - {"other"}
    assert len(codes) == size


def test_open_lists_keep_an_other_item(taxonomy: Taxonomy) -> None:
    for kind in (
        "channels",
        "targets",
        "offices",
        "motives",
        "bias",
        "triggers",
        "consequences",
        "responses",
    ):
        assert "other" in taxonomy.valid_codes(kind), kind
    assert "other" in taxonomy.valid_codes("support_needs")


def test_every_label_is_non_empty_in_both_languages(taxonomy: Taxonomy) -> None:
    for kind in taxonomy.kinds():
        for code in taxonomy.labels(kind, "de"):
            assert taxonomy.label(kind, code, "de").strip(), (kind, code)
            assert taxonomy.label(kind, code, "en").strip(), (kind, code)


def test_codes_are_unique_and_children_carry_their_parent(taxonomy: Taxonomy) -> None:
    codes = taxonomy.all_type_codes()
    assert len(codes) == len(set(codes))
    for code in codes:
        parent = taxonomy.parent_type(code)
        if parent is not None:
            assert code.startswith(parent)
    for kind in ("channels", "consequences"):
        for code in taxonomy.valid_codes(kind):
            if "." in code:
                assert code.split(".")[0] in taxonomy.valid_codes(kind)


def test_every_reportable_type_has_severity_and_legal_flag(taxonomy: Taxonomy) -> None:
    for code in taxonomy.valid_codes("incident_types"):
        item = taxonomy.incident_type(code)
        assert item.severity in range(1, 7)
        assert item.legal is not None


@pytest.mark.parametrize(
    ("code", "severity"),
    [
        ("D6", 1),
        ("D5", 2),
        ("D4", 2),
        ("D1", 2),
        ("C1", 3),
        ("C6", 3),
        ("A3a", 4),
        ("A4", 4),
        ("A5", 4),
        ("A9", 4),
        ("A11", 4),
        ("A1", 5),
        ("A6", 5),
        ("B3", 5),
        ("X1", 5),
        ("A10", 6),
    ],
)
def test_severity_follows_rias_groups(code: str, severity: int, taxonomy: Taxonomy) -> None:
    assert taxonomy.severity_of([code]) == severity


@pytest.mark.parametrize(
    ("code", "legal"),
    [
        ("A1", LegalRelevance.complaint_only),  # § 194
        ("A2", LegalRelevance.complaint_only),
        ("A5", LegalRelevance.complaint_only),  # § 238 (4), relative
        ("A7", LegalRelevance.complaint_only),  # § 184i (3) relative; verbal: § 185 via § 194
        ("C1", LegalRelevance.complaint_only),  # § 303c
        ("D3", LegalRelevance.complaint_only),  # § 230
        ("A3", LegalRelevance.likely_criminal),  # § 241
        ("A4", LegalRelevance.likely_criminal),
        ("A6", LegalRelevance.likely_criminal),
        ("A9", LegalRelevance.likely_criminal),
        ("C6", LegalRelevance.likely_criminal),
        ("D5", LegalRelevance.likely_criminal),
        ("D6", LegalRelevance.likely_criminal),
        ("A8", LegalRelevance.non_criminal),
        ("A10", LegalRelevance.non_criminal),
    ],
)
def test_legal_flag(code: str, legal: LegalRelevance, taxonomy: Taxonomy) -> None:
    assert taxonomy.legal_of(code) is legal


def test_severity_of_several_codes_is_the_most_severe(taxonomy: Taxonomy) -> None:
    assert taxonomy.severity_of(["A10", "A3a"]) == 4
    assert taxonomy.severity_of(["A1", "D6", "C2"]) == 1
    with pytest.raises(ValueError, match="empty"):
        taxonomy.severity_of([])
    with pytest.raises(KeyError, match="group heading"):
        taxonomy.severity_of(["D"])
    with pytest.raises(KeyError, match="unknown"):
        taxonomy.severity_of(["A99"])


def test_complaint_only_deadline_flag(taxonomy: Taxonomy) -> None:
    assert taxonomy.has_complaint_only(["A3", "A1"])
    assert not taxonomy.has_complaint_only(["A3a", "D6"])
    assert not taxonomy.has_complaint_only([])


def test_hierarchy_helpers(taxonomy: Taxonomy) -> None:
    assert taxonomy.is_leaf_type("A3a")
    assert taxonomy.is_leaf_type("A1")
    assert not taxonomy.is_leaf_type("A3")
    assert not taxonomy.is_leaf_type("A")
    assert taxonomy.is_group("D")
    assert taxonomy.group_of("A3c") == "A"
    assert taxonomy.parent_type("A3c") == "A3"
    assert taxonomy.type_matches("A3c", "A")
    assert not taxonomy.type_matches("A10", "A1")
    assert taxonomy.incident_type("A3").statute == "§ 241 StGB"
    with pytest.raises(KeyError):
        taxonomy.incident_type("Z9")


def test_channels_know_whether_they_are_online(taxonomy: Taxonomy) -> None:
    assert taxonomy.channel_is_online("email")
    assert taxonomy.channel_is_online("social_media.group")  # inherited from the parent
    assert not taxonomy.channel_is_online("in_person.home")
    assert not taxonomy.channel_is_online("letter")
    assert not taxonomy.channel_is_online("other")
    with pytest.raises(KeyError):
        taxonomy.channel_is_online("carrier_pigeon")


def test_urgency_and_office_codes(taxonomy: Taxonomy) -> None:
    assert taxonomy.valid_codes("urgency") == frozenset({"acute", "high", "normal"})
    assert "110" in (taxonomy.hint("urgency", "acute", "de") or "")
    assert set(OFFICES_DE) | {"other"} == taxonomy.valid_codes("offices")
    assert set(TARGETS_DE) | {"other"} == taxonomy.valid_codes("targets")


def test_labels_in_english_and_unknown_kinds(taxonomy: Taxonomy) -> None:
    assert taxonomy.label("incident_types", "A1", "en") == "Insult"
    assert taxonomy.label("perpetrator.familiarity", "anonymous", "de") == "anonym"
    with pytest.raises(KeyError, match="unknown taxonomy kind"):
        taxonomy.valid_codes("colours")
    with pytest.raises(KeyError):
        taxonomy.label("channels", "fax_machine", "de")


def test_form_items_are_top_level_with_nested_children(taxonomy: Taxonomy) -> None:
    groups = taxonomy.items("incident_types")
    assert [item.code for item in groups] == ["A", "B", "C", "D", "X"]
    channels = taxonomy.items("channels")
    assert "in_person.home" not in [item.code for item in channels]
    in_person = channels[0]
    assert isinstance(in_person, Channel)
    assert any(child.code == "in_person.home" for child in in_person.children)


def test_the_party_field_is_off_by_default(taxonomy: Taxonomy) -> None:
    party = next(field for field in taxonomy.data.optional_fields if field.code == "party")
    assert party.special_category
    assert not party.enabled
