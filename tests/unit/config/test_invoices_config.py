"""[invoices] and [invoices.signin]: defaults, and errors that name the field."""

from __future__ import annotations

import pytest

from config import ConfigError
from tests.support.config import make_settings

SIGNIN = {"domain": "app.example", "uri": "https://app.example", "token_key": "env:KEY"}


def test_defaults_and_signin(tmp_path):
    s = make_settings(tmp_path, {})
    assert s.invoices.signin is None and s.invoices.default_expiry_seconds == 900
    s = make_settings(tmp_path, {"invoices": {"signin": SIGNIN}})
    assert s.invoices.signin.domain == "app.example" and s.invoices.signin.challenge_ttl_seconds == 300


@pytest.mark.parametrize("change,field", [
    ({"token_key": "a-literal-key"}, "invoices.signin.token_key"),
    ({"domain": "https://app.example"}, "invoices.signin.domain"),
    ({"uri": "not a uri"}, "invoices.signin.uri"),
    ({"challenge_ttl_seconds": 1}, "invoices.signin.challenge_ttl_seconds"),
])
def test_bad_signin_config_names_the_field(tmp_path, change, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        make_settings(tmp_path, {"invoices": {"signin": {**SIGNIN, **change}}})
