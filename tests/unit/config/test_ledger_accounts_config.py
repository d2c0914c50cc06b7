"""[[ledger.accounts]]: app accounts with their overdraft, and errors that name the field."""

from __future__ import annotations

import pytest

from config import ConfigError
from settlement.ledger.transfers import overdraft
from tests.support.config import make_settings


def test_app_accounts_and_their_limits(tmp_path):
    s = make_settings(tmp_path, {"ledger": {"accounts": [
        {"code": "app:prizes", "overdraft": "250", "label": "Prizes"},
        {"code": "app:treasury", "overdraft": "unlimited"},
        {"code": "app:revenue"}]}})
    assert [overdraft(s, c) for c in ("app:prizes", "app:treasury", "app:revenue", "app:other")] == [250, None, 0, 0]
    assert overdraft(s, "user:anvil:0x" + "ab" * 20) == 0  # a user is never owed less than zero
    assert s.ledger.create_app_accounts is False and s.ledger.hold_timeout_seconds == 3600


@pytest.mark.parametrize("accounts,field", [
    ([{"code": "user:anvil:0xab"}], "ledger.accounts[0].code"),
    ([{"code": "app:a b"}], "ledger.accounts[0].code"),
    ([{"code": "app:x", "overdraft": "-1"}], "ledger.accounts[0].overdraft"),
    ([{"code": "app:x", "overdraft": "lots"}], "ledger.accounts[0].overdraft"),
    ([{"code": "app:x"}, {"code": "app:x"}], "accounts listed twice"),
])
def test_bad_account_config_names_the_field(tmp_path, accounts, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
        make_settings(tmp_path, {"ledger": {"accounts": accounts}})
