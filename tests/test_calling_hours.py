"""CALLING_HOURS as an operator writes it, and the numbering plan's zone of a phone number."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import timezone as number_zones

from adapters.config import ConfigError, load_settings
from schemas.calling_hours import DEFAULT_CALLING_HOURS, parse_calling_hours
from schemas.zones import numbering_plan_zone

WEEKDAY, SATURDAY = ((8 * 60, 22 * 60),), ((9 * 60, 20 * 60),)


def test_the_default_is_the_law_for_debts() -> None:
    hours = load_settings({}).calling_hours
    assert hours.text == DEFAULT_CALLING_HOURS
    assert [hours.on(day) for day in range(7)] == [WEEKDAY] * 5 + [SATURDAY] * 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mon-fri 08:00-22:00; sat,sun 09:00-20:00", [WEEKDAY] * 5 + [SATURDAY] * 2),
        ("MON 08:00-22:00", [WEEKDAY] + [()] * 6),
        ("fri-mon 09:00-20:00", [SATURDAY] + [()] * 3 + [SATURDAY] * 3),
        (
            "mon,wed-thu 10:00 - 24:00",
            [((600, 1440),), (), ((600, 1440),), ((600, 1440),)] + [()] * 3,
        ),
        (
            "mon-sun 09:00-13:00; mon-sun 14:00-20:00; sun 12:00-15:00",
            [((540, 780), (840, 1200))] * 6 + [((540, 1200),)],
        ),
    ],
)
def test_days_ranges_lists_and_segments(text: str, expected: list) -> None:
    hours = parse_calling_hours(text)
    assert [hours.on(day) for day in range(7)] == expected


def test_off_lifts_the_rule() -> None:
    assert parse_calling_hours(" OFF ") is None
    assert load_settings({"CALLING_HOURS": "off"}).calling_hours is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "must be 'off' or segments"),
        ("mon-fry 08:00-22:00", "'fry' is not a day"),
        ("mon 22:00-08:00", "must end after they start"),
        ("mon 08:00-24:01", "24:01 is not a time of day"),
        ("mon 08:60-09:00", "08:60 is not a time of day"),
        ("weekdays", "is not 'DAYS HH:MM-HH:MM'"),
        ("mon 8:00-22:00", "is not 'DAYS HH:MM-HH:MM'"),
        (";", "names no day"),
    ],
)
def test_a_bad_setting_stops_the_worker_with_one_line_naming_it(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=r"^CALLING_HOURS=") as excinfo:
        load_settings({"CALLING_HOURS": text})
    assert says in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PLATFORM_TIMEZONE", "Asia/Chelyabinsk-ish"),
        ("MAX_PHONES_PER_CAMPAIGN", "0"),
        ("MAX_PHONES_PER_CAMPAIGN", "many"),
    ],
)
def test_the_other_planning_settings_are_checked(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}="):
        load_settings({variable: value})


def test_max_phones_per_campaign_defaults_to_the_request_limit() -> None:
    assert load_settings({"MAX_PHONES_PER_REQUEST": "7"}).max_phones_per_campaign == 7
    assert load_settings({"MAX_PHONES_PER_CAMPAIGN": "3"}).max_phones_per_campaign == 3
    assert load_settings({}).platform_timezone == "Asia/Yekaterinburg"


# -- a number's own zone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "zone"),
    [
        ("+73432123456", "Asia/Yekaterinburg"),  # Yekaterinburg
        ("+74951234567", "Europe/Moscow"),
        ("+74152123456", "Asia/Kamchatka"),
        ("+73952123456", "Asia/Irkutsk"),
        # the metadata says Europe/Bucharest, which keeps summer time; Kaliningrad does not
        ("+74012123456", "Europe/Kaliningrad"),
        ("+79123456789", None),  # mobile: the whole country's zones
        ("+78005553535", None),  # toll-free
        ("+12015550123", "America/New_York"),
    ],
)
def test_the_numbering_plan_gives_a_geographic_number_its_zone(number: str, zone) -> None:
    assert numbering_plan_zone(number) == zone


def test_in_the_plus_7_plan_three_digits_decide_a_numbers_zone() -> None:
    """What lets ``numbering_plan_zone`` look each +7 prefix up once: every valid number
    sharing its first three digits gets the same answer from phonenumbers itself."""
    rng = random.Random(7)
    for prefix in range(300, 1000):
        answers = set()
        for _ in range(40):
            number = phonenumbers.parse(f"+7{prefix}{rng.randrange(10**7):07d}")
            if phonenumbers.is_valid_number(number):
                zones = number_zones.time_zones_for_number(number)
                answers.add(zones[0] if len(zones) == 1 else None)
        assert len(answers) <= 1, (prefix, answers)
