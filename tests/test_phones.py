"""Phone normalisation: every common RU form gives one E.164, and the fast path never
disagrees with phonenumbers."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schemas.phones import normalise_phone


def reference(raw: str, region: str = "RU") -> str | None:
    """What phonenumbers alone says: the answer the fast path must reproduce."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize(
    "raw",
    [
        "+79123456789",
        "89123456789",
        "79123456789",
        "9123456789",
        "8 (912) 345-67-89",
        "+7 912 345-67-89",
        "+7 (912) 345 67 89",
        "8.912.345.67.89",
        " 8-912-345-67-89 ",
        "7 912 3456789",
        "(+7) 912-345-6789",
        79123456789,
        89123456789,
        9123456789,
    ],
)
def test_common_ru_forms_give_e164(raw: str | int) -> None:
    assert normalise_phone(raw) == "+79123456789"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("8123456789", "+78123456789"),  # St Petersburg: ten digits starting 8
        ("8 800 555-35-35", "+78005553535"),  # toll free
        ("+7 701 123 45 67", "+77011234567"),  # Kazakhstan shares +7
        ("+1 650 253 0000", "+16502530000"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_other_valid_numbers(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "abc",
        "912345678",  # nine digits
        "791234567890",  # twelve digits
        "+89123456789",  # there is no country code 89
        "+7 -912",
        "8 (912) 345-67-8",
        "+7 000 123 45 67",
    ],
)
def test_unreadable_or_invalid_text_is_none(raw: str) -> None:
    assert normalise_phone(raw) is None


@pytest.mark.parametrize("raw", [None, True, False, 79123456789.0, ["+79123456789"], b"9123456789"])
def test_what_is_neither_text_nor_int_is_none(raw: object) -> None:
    assert normalise_phone(raw) is None  # type: ignore[arg-type]


def test_other_region_default() -> None:
    assert normalise_phone("(650) 253-0000", region="US") == "+16502530000"
    assert normalise_phone("9123456789", region="US") == "+19123456789"  # not the RU fast path


def test_fast_path_does_not_call_phonenumbers(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("phonenumbers.parse called on a common shape")

    monkeypatch.setattr(phonenumbers, "parse", refuse)
    for raw in ("+79123456789", "89123456789", "79123456789", "8 (912) 345-67-89"):
        assert normalise_phone(raw) == "+79123456789"
    for raw in ("8 (351) 123-45-67", "+7 351 1234567", "3511234567"):  # Chelyabinsk
        assert normalise_phone(raw) == "+73511234567"


# --- properties -------------------------------------------------------------------------

separators = st.text(alphabet=" -.()", max_size=2)
# ten digits the fast path may take: RU mobile and geographic numbers, valid or not
fast_path_nationals = st.from_regex(r"[349][0-9]{9}", fullmatch=True)
prefixes = st.sampled_from(["+7", "8", "7", ""])


@st.composite
def written_forms(draw: st.DrawFn, national: str) -> str:
    """``national`` as a person or a CRM might write it: a prefix and separators anywhere."""
    parts = [draw(separators), draw(prefixes)]
    for digit in national:
        parts += [draw(separators), digit]
    parts.append(draw(separators))
    return "".join(parts)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), national=st.sampled_from(["9123456789", "9001234567", "3511234567"]))
def test_every_written_form_of_a_number_gives_the_same_e164(
    data: st.DataObject, national: str
) -> None:
    assert normalise_phone(data.draw(written_forms(national))) == "+7" + national


@settings(max_examples=1500, deadline=None)
@given(data=st.data(), national=fast_path_nationals)
@example(data=None, national="9300050000")
@example(data=None, national="9300300000")
@example(data=None, national="3011234567")
@example(data=None, national="3001234567")
def test_fast_path_agrees_with_phonenumbers_on_its_shapes(
    data: st.DataObject | None, national: str
) -> None:
    raw = data.draw(written_forms(national)) if data else national
    assert normalise_phone(raw) == reference(raw)


@settings(max_examples=1500, deadline=None)
@given(raw=st.text(alphabet="0123456789789 -.()+", max_size=20))
def test_fast_path_agrees_with_phonenumbers_on_any_digits_and_separators(raw: str) -> None:
    assert normalise_phone(raw) == reference(raw)


@settings(max_examples=300, deadline=None)
@given(raw=st.integers(min_value=0, max_value=10**12))
def test_int_phones_read_like_their_digits(raw: int) -> None:
    assert normalise_phone(raw) == reference(str(raw))
