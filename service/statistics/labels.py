"""How a cell's key reads on a page: one labelling for the coordinators' and the public statistics."""

from __future__ import annotations

from service.i18n import Translator, pick
from service.runtime import Runtime

_MONTHS = {
    "de": ["Jan", "Feb", "Mär", "Apr", "Mai", "Jun", "Jul", "Aug", "Sep", "Okt", "Nov", "Dez"],
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
}
# Dimensions whose keys are taxonomy codes (public tables use leaf types, the dashboard type groups).
_TAXONOMY_OF = {
    "type": "incident_types",
    "type_group": "incident_types",
    "office": "offices",
    "channel": "channels",
    "motive": "motives",
    "bias": "bias",
    "trigger": "triggers",
    "consequence": "consequences",
}


def cell_label(runtime: Runtime, dimension: str, key: str, lang: str, t: Translator) -> str:
    if key == "not_stated":
        return t("statistics.not_stated")
    if dimension == "month":
        return f"{_MONTHS[lang][int(key[5:7]) - 1]} {key[:4]}"
    if dimension == "land":
        land = runtime.districts.land(key)
        return pick(land.name, lang) if land is not None else key
    if dimension == "severity":
        return t("dashboard.severity", n=key)
    if dimension in _TAXONOMY_OF:
        try:
            return runtime.taxonomy.label(_TAXONOMY_OF[dimension], key, lang)
        except KeyError:
            return key
    return key
