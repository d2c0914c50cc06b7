"""logsBloom arithmetic and the confirmation-window defaults."""

from __future__ import annotations

from config.settings import ChainConfig
from indexer.evm.bloom import bloom_bits, log_in_bloom, may_match, parse_bloom

TOKEN = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
APPROVAL = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"


def bloom_of(*items: str) -> bytes:
    b = bytearray(256)
    for x in items:
        for i, mask in bloom_bits(x):
            b[i] |= mask
    return bytes(b)


def test_a_log_is_in_the_bloom_of_its_items_only():
    bloom = bloom_of(TOKEN, TRANSFER)
    assert log_in_bloom(bloom, {"address": TOKEN, "topics": [TRANSFER]})
    assert log_in_bloom(bloom, {"address": TOKEN.upper().replace("0X", "0x"), "topics": [TRANSFER]})
    assert not log_in_bloom(bloom, {"address": OTHER, "topics": [TRANSFER]})
    assert not log_in_bloom(bytes(256), {"address": TOKEN, "topics": [TRANSFER]})


def test_may_match_needs_an_address_and_a_topic():
    assert may_match(bloom_of(TOKEN, TRANSFER), [TOKEN], [TRANSFER])
    assert not may_match(bloom_of(TOKEN, APPROVAL), [TOKEN], [TRANSFER])
    assert not may_match(bloom_of(OTHER, TRANSFER), [TOKEN], [TRANSFER])


def test_parse_bloom_rejects_malformed():
    assert parse_bloom("0x" + "00" * 256) == bytes(256)
    assert parse_bloom("0x00") is None and parse_bloom(None) is None and parse_bloom("0x" + "zz" * 256) is None


def chain(**kw) -> ChainConfig:
    return ChainConfig(name="c", rpc=["http://127.0.0.1:1"], **kw)


def test_confirmation_window_defaults_per_preset():
    assert chain(preset="flare").effective_confirmation_blocks == 3
    assert chain(preset="cronos").effective_confirmation_blocks == 3
    assert chain(preset="bsc").effective_confirmation_blocks == 0
    assert chain(preset="anvil", finality_depth=1).effective_confirmation_blocks == 0
    assert chain(preset="flare", confirmation_blocks=0).effective_confirmation_blocks == 0
    assert chain(preset="anvil", confirmation_blocks=5).effective_confirmation_blocks == 5


def test_wallet_assets_default_to_native_and_every_erc20_of_the_chain():
    token = {"name": "USDT", "address": "0x" + "11" * 20}
    other = {"name": "USDC", "address": "0x" + "22" * 20, "abi": "erc20"}
    batcher = {"name": "batcher", "address": "0x" + "33" * 20, "abi": "payout_batcher"}
    cfg = chain(preset="flare", contracts=[token, other, batcher],
                wallets=[{"name": "hot", "address": "0x" + "44" * 20},
                         {"name": "cold", "address": "0x" + "55" * 20, "assets": ["native"]},
                         {"name": "none", "address": "0x" + "66" * 20, "assets": []}])
    assert [w.assets for w in cfg.wallets] == [["native", "USDT", "USDC"], ["native"], []]
