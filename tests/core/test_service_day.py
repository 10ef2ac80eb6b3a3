"""A date "not in the future" is judged by the service's calendar day (Europe/Berlin), not the machine's.

On a server in UTC, ``date.today()`` is still yesterday between midnight and one in Germany (two in summer):
a mayor reporting at half past midnight what happened that evening was told the date lay in the future, and
six tests failed whenever the suite ran in that hour.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo

import pytest
from pydantic import ValidationError

from service import i18n, validation
from service.reports.schemas import PerpetratorKnown


def at(moment: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            shown = moment.astimezone(tz) if tz is not None else moment
            return cls(*shown.timetuple()[:6], tzinfo=shown.tzinfo)

    monkeypatch.setattr(i18n, "datetime", Frozen)


@pytest.mark.parametrize(
    ("utc", "berlin_day"),
    [
        (datetime(2026, 12, 6, 23, 30, tzinfo=UTC), date(2026, 12, 7)),  # winter: 00:30 in Berlin
        (datetime(2026, 7, 6, 22, 30, tzinfo=UTC), date(2026, 7, 7)),  # summer: 00:30 in Berlin
        (datetime(2026, 12, 6, 12, 0, tzinfo=UTC), date(2026, 12, 6)),
    ],
)
def test_today_in_berlin_is_accepted_and_its_tomorrow_refused(
    utc: datetime, berlin_day: date, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(utc, monkeypatch)
    assert i18n.service_today() == berlin_day
    assert validation.past_day(berlin_day) == berlin_day
    known = PerpetratorKnown.model_validate({"seq": 1, "perpetrator_known_on": berlin_day.isoformat()})
    assert known.perpetrator_known_on == berlin_day
    tomorrow = date.fromordinal(berlin_day.toordinal() + 1)
    with pytest.raises(ValidationError, match="future"):
        PerpetratorKnown.model_validate({"seq": 1, "perpetrator_known_on": tomorrow.isoformat()})
