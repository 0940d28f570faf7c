"""An address is valid exactly when the rule says so, and the rule is Django's own."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from msglog.rules import addresses
from tests.fakes import fake_twilio  # noqa: F401  (the fixture)


@hypothesis_settings(deadline=None)  # the first call compiles the validator's patterns
@given(st.from_regex(r"[a-zA-Z0-9.\"@\[\]:_+ -]{0,12}@[a-zA-Z0-9.\[\]:-]{0,14}", fullmatch=True))
def test_an_address_is_valid_exactly_when_djangos_validator_says_so(address):
    try:
        validate_email(address.strip())
        valid = True
    except ValidationError:
        valid = False
    assert (addresses.normalize_email(address) is not None) == valid
