"""Wallet sign-in over the real API on a real database: SIWE by an EOA,
a contract wallet through EIP-1271 on anvil, an XRPL key; replayed nonces,
wrong domain, wrong chain id and expired messages refused with a reason;
the token verifies with the configured key and never shows it."""

from __future__ import annotations

import datetime as dt

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address
from xrpl.core.keypairs import sign as xrpl_sign

from config import Secret
from settlement.signin.messages import parse_message
from settlement.signin.tokens import verify_token
from tests.support.anvil import DEV_ACCOUNTS, Anvil, rpc_sync
from tests.support.api_data import client_for
from tests.support.config import evm_chain, make_settings
from tests.support.evm import deploy
from tests.support.xrpl import Driver, wallet, xrpl_ledger  # noqa: F401

KEY = "signin-test-key-0123456789"
DOMAIN = "shop.example"
ALICE = Account.from_key(DEV_ACCOUNTS[1][1])
OWNER = Account.from_key(DEV_ACCOUNTS[2][1])
# Runtime code returning its own calldata: CALLDATASIZE PUSH0 PUSH0 CALLDATACOPY CALLDATASIZE PUSH0 RETURN.
ECHO_CODE = "0x365f5f37365ff3"


@pytest.fixture
def node():
    with Anvil() as a:
        yield a


def settings_for(tmp_path, url: str, xrpl_url: str = "http://127.0.0.1:1", **signin):
    return make_settings(tmp_path, {
        "chains": [evm_chain("anvil", url), {"name": "xr", "preset": "xrpl", "rpc": [xrpl_url]}],
        "invoices": {"signin": {"domain": DOMAIN, "uri": f"https://{DOMAIN}", "token_key": "env:TEST_SIGNIN_KEY",
                                **signin}},
    })


def personal_sign(account, message: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=message)).signature.hex().removeprefix("0x")


async def challenge(client, chain: str, address: str) -> dict:
    r = await client.post("/v1/auth/challenge", json={"chain": chain, "address": address})
    assert r.status == 201, await r.text()
    return await r.json()


async def verify(client, chain: str, message: str, signature: str, **extra):
    r = await client.post("/v1/auth/verify", json={"chain": chain, "message": message, "signature": signature, **extra})
    return r.status, await r.json()


async def test_siwe_eoa_contract_wallet_and_xrpl(node, xrpl_ledger, pool, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SIGNIN_KEY", KEY)
    settings = settings_for(tmp_path, node.url, xrpl_ledger.http_url)
    d = Driver(xrpl_ledger)
    funded = wallet(503)
    d.fund(funded)
    d.close()
    async with client_for(settings, pool) as client:
        # A valid SIWE signature by an EOA verifies, once.
        ch = await challenge(client, "anvil", ALICE.address.lower())
        msg = parse_message(ch["message"])
        assert (msg.domain, msg.chain_id, msg.address) == (DOMAIN, 31337, to_checksum_address(ALICE.address))
        sig = personal_sign(ALICE, ch["message"])
        status, body = await verify(client, "anvil", ch["message"], sig)
        assert status == 200, body
        assert body["address"] == ALICE.address.lower() and body["method"] == "eoa"
        claims = verify_token(Secret(KEY, "test"), body["token"])
        assert claims["sub"] == ALICE.address.lower() and claims["iss"] == DOMAIN
        assert verify_token(Secret("another key", "test"), body["token"]) is None
        assert KEY not in str(body)
        # Replayed: refused, the nonce is spent.
        status, body = await verify(client, "anvil", ch["message"], sig)
        assert (status, body["reason"]) == (401, "nonce_used")

        # Another key signing Alice's challenge does not verify, and spends the nonce: one
        # challenge buys one verification attempt, not an unlimited series of RPC calls.
        ch = await challenge(client, "anvil", ALICE.address)
        status, body = await verify(client, "anvil", ch["message"], personal_sign(OWNER, ch["message"]))
        assert (status, body["reason"]) == (401, "bad_signature")
        status, body = await verify(client, "anvil", ch["message"], personal_sign(ALICE, ch["message"]))
        assert (status, body["reason"]) == (401, "nonce_used")
        ch = await challenge(client, "anvil", ALICE.address)
        status, body = await verify(client, "anvil", ch["message"], personal_sign(ALICE, ch["message"]))
        assert status == 200

        # Wrong domain, wrong chain id, expired: each refused with its reason, even when properly signed.
        ch = await challenge(client, "anvil", ALICE.address)
        for old, new, reason in (
            (f"{DOMAIN} wants", "evil.example wants", "domain"),
            ("Chain ID: 31337", "Chain ID: 1", "chain_id"),
        ):
            forged = ch["message"].replace(old, new)
            status, body = await verify(client, "anvil", forged, personal_sign(ALICE, forged))
            assert (status, body["reason"]) == (401, reason), body
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat(timespec="seconds").replace("+00:00", "Z")
        lines = ch["message"].split("\n")
        expired = "\n".join(line if not line.startswith("Expiration Time: ") else f"Expiration Time: {past}"
                            for line in lines)
        status, body = await verify(client, "anvil", expired, personal_sign(ALICE, expired))
        assert (status, body["reason"]) == (401, "expired")
        status, body = await verify(client, "anvil", "hello", "0x00")
        assert (status, body["reason"]) == (400, "malformed")

        # A contract wallet: its owner signs, the wallet's isValidSignature says yes (eth_call).
        wallet_addr = deploy(node.url, "TestContractWallet", OWNER.address)
        # Read at the final block (anvil preset: depth 5): not yet there, then there.
        ch = await challenge(client, "anvil", wallet_addr)
        status, body = await verify(client, "anvil", ch["message"], personal_sign(OWNER, ch["message"]))
        assert (status, body["reason"]) == (401, "bad_signature")
        rpc_sync(node.url, "anvil_mine", [hex(5)])
        ch = await challenge(client, "anvil", wallet_addr)
        status, body = await verify(client, "anvil", ch["message"], personal_sign(OWNER, ch["message"]))
        assert status == 200, body
        assert (body["address"], body["method"]) == (wallet_addr.lower(), "eip1271")
        ch = await challenge(client, "anvil", wallet_addr)
        status, body = await verify(client, "anvil", ch["message"], personal_sign(ALICE, ch["message"]))
        assert (status, body["reason"]) == (401, "bad_signature")
        # A contract that echoes its calldata answers with the selector first: not a signature.
        echo = "0x" + "ec" * 20
        rpc_sync(node.url, "anvil_setCode", [echo, ECHO_CODE])
        rpc_sync(node.url, "anvil_mine", [hex(5)])
        ch = await challenge(client, "anvil", echo)
        status, body = await verify(client, "anvil", ch["message"], "0x" + "00" * 65)
        assert (status, body["reason"]) == (401, "bad_signature")

        # XRPL: the account's key signs the challenge's UTF-8 bytes (a funded
        # account's master key, read with account_info; an unfunded one has only that key).
        for w in (funded, wallet(501)):
            ch = await challenge(client, "xr", w.classic_address)
            assert ch["kind"] == "xrpl" and "your XRPL account" in ch["message"]
            sig = xrpl_sign(ch["message"].encode(), w.private_key)
            status, body = await verify(client, "xr", ch["message"], sig, public_key=w.public_key)
            assert status == 200, body
            assert (body["address"], body["method"]) == (w.classic_address, "xrpl")
        w = funded
        other = wallet(502)
        ch = await challenge(client, "xr", w.classic_address)
        sig = xrpl_sign(ch["message"].encode(), other.private_key)
        status, body = await verify(client, "xr", ch["message"], sig, public_key=other.public_key)
        assert (status, body["reason"]) == (401, "bad_signature")

        # Bad input names its field.
        r = await client.post("/v1/auth/challenge", json={"chain": "nope", "address": ALICE.address})
        assert r.status == 400 and (await r.json())["field"] == "chain"
        r = await client.post("/v1/auth/challenge", json={"chain": "anvil", "address": "0x12"})
        assert r.status == 400 and (await r.json())["field"] == "address"
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'signin.verified'") == 5


async def test_nonce_is_single_use_across_clients(node, pool, tmp_path, monkeypatch):
    """Two API apps (as two processes would) race one signed challenge: exactly one wins."""
    import asyncio

    monkeypatch.setenv("TEST_SIGNIN_KEY", KEY)
    settings = settings_for(tmp_path, node.url)
    async with client_for(settings, pool) as a, client_for(settings, pool) as b:
        ch = await challenge(a, "anvil", ALICE.address)
        sig = personal_sign(ALICE, ch["message"])
        results = await asyncio.gather(*(verify(c, "anvil", ch["message"], sig) for c in (a, b, a, b)))
    assert sorted(s for s, _ in results) == [200, 401, 401, 401]
