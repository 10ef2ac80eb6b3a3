"""What the taxonomy (operator data) decides of a report: its codes, checked before anything is written.

Structure and sizes are checked by the schemas; the codes here, because the taxonomy can change without a
release. Each refusal names its field and a stable code (``service.validation.public_error``)."""

from __future__ import annotations

from service.errors import ErrorDetail
from service.reports.schemas import IncidentFields, ReportCreate
from service.taxonomy import Districts, Taxonomy
from service.taxonomy.loader import ANSWER_KINDS
from service.validation import public_error


def check_incident_codes(tax: Taxonomy, data: IncidentFields) -> list[ErrorDetail]:
    errors: list[ErrorDetail] = []
    types = tax.valid_codes("incident_types")
    for index, code in enumerate(data.type_codes):
        if code not in types:
            errors.append(public_error(["type_codes", index], "invalid_code", "unknown incident type code"))
    if len(set(data.type_codes)) != len(data.type_codes):
        errors.append(public_error(["type_codes"], "duplicate", "incident type codes repeat"))
    checks: list[tuple[str, str | None, str]] = [
        ("channel", data.channel, "channels"),
        ("urgency", data.urgency, "urgency"),
        ("perpetrator_familiarity", data.perpetrator_familiarity, "perpetrator.familiarity"),
        ("perpetrator_residence", data.perpetrator_residence, "perpetrator.residence"),
        ("perpetrator_number", data.perpetrator_number, "perpetrator.number"),
    ]
    for field, value, kind in checks:
        if value is not None and value not in tax.valid_codes(kind):
            errors.append(public_error([field], "invalid_code", f"unknown {field.replace('_', ' ')} code"))
    return errors


def check_report(tax: Taxonomy, districts: Districts, data: ReportCreate) -> list[ErrorDetail]:
    errors = check_incident_codes(tax, data)
    for index, code in enumerate(data.targets):
        if code not in tax.valid_codes("targets"):
            errors.append(public_error(["targets", index], "invalid_code", "unknown target code"))
    for index, code in enumerate(data.support_needs):
        if code not in tax.valid_codes("support_needs"):
            errors.append(public_error(["support_needs", index], "invalid_code", "unknown support need code"))
    if data.office is not None and data.office not in tax.valid_codes("offices"):
        errors.append(public_error(["office"], "invalid_code", "unknown office code"))
    if data.reported_by not in tax.valid_codes("reported_by"):
        errors.append(public_error(["reported_by"], "invalid_code", "unknown reported_by code"))
    for kind in ANSWER_KINDS:
        for index, code in enumerate(getattr(data, kind)):
            if code not in tax.valid_codes(kind):
                errors.append(public_error([kind, index], "invalid_code", f"unknown {kind} code"))
    if data.district_ags is not None:
        district = districts.district(data.district_ags)
        if district is None:
            errors.append(public_error(["district_ags"], "invalid_code", "unknown district"))
        elif district.land != data.land:
            errors.append(public_error(["district_ags"], "district_land", "district is not in this Land"))
    return errors
