"""The incident taxonomy and the list of Länder and districts, both loaded from ``policies/``."""

from service.taxonomy.codes import channel_matches, parse_type_code, type_code_matches
from service.taxonomy.districts import LAND_CODES, LANDS, District, Districts, Land, load_districts
from service.taxonomy.files import PolicyFileError, Problem
from service.taxonomy.loader import (
    Channel,
    IncidentType,
    Item,
    Label,
    Lang,
    LegalRelevance,
    OptionalField,
    SeverityGroup,
    Taxonomy,
    TaxonomyFile,
    load_taxonomy,
    parse_taxonomy,
)

__all__ = [
    "LANDS",
    "LAND_CODES",
    "Channel",
    "District",
    "Districts",
    "IncidentType",
    "Item",
    "Label",
    "Land",
    "Lang",
    "LegalRelevance",
    "OptionalField",
    "PolicyFileError",
    "Problem",
    "SeverityGroup",
    "Taxonomy",
    "TaxonomyFile",
    "channel_matches",
    "load_districts",
    "load_taxonomy",
    "parse_taxonomy",
    "parse_type_code",
    "type_code_matches",
]
