"""Payout gas: what one PayoutBatcher batch costs per recipient, on anvil.

Batches of 20, 100 and 200 fresh recipients (cold accounts: the dearest
case, a new balance slot or a new account each), signed by the daemon's own
EIP-712 code and executed from a relayer that is not the signer, for:
- native (the contract's own ether),
- ERC-20 paid from the contract's own token balance,
- ERC-20 paid from a treasury by transferFrom (its allowance and balance
  slots warmed first, as in steady operation).
Prints gas used per batch and per recipient (total / n, which includes the
signature check and the batch-id guard spread over the batch). For scale: a
Disperse-style ERC-20 batch costs about 35,000-45,000 gas per recipient.

    .venv/bin/python bench/payouts.py [--sizes 20,100,200]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eth_utils import to_checksum_address  # noqa: E402

from bench.results import record  # noqa: E402
from settlement.payouts.evm.eip712 import (  # noqa: E402
    NATIVE,
    Batch,
    Domain,
    FundingSource,
    execute_batch_calldata,
    sign_batch,
)
from settlement.payouts.evm.signer import LocalKeySigner  # noqa: E402
from tests.support.anvil import DEV_ACCOUNTS, Anvil  # noqa: E402
from tests.support.batcher import RELAYER, fresh_address, latest_timestamp  # noqa: E402
from tests.support.evm import calldata, deploy, deploy_token, send  # noqa: E402

OWNER = DEV_ACCOUNTS[0][0]
SIGNER = LocalKeySigner(bytes.fromhex(DEV_ACCOUNTS[1][1][2:]))
TREASURY = DEV_ACCOUNTS[2][0]
ETHER = 10**18


def gas_of_batch(anvil, batcher: str, n: int, asset: str = NATIVE, treasury: bool = False) -> int:
    batch = Batch(batch_id=os.urandom(32), asset=asset,
                  source=FundingSource.TREASURY if treasury else FundingSource.CONTRACT,
                  treasury=TREASURY if treasury else NATIVE, recipients=tuple(fresh_address() for _ in range(n)),
                  amounts=tuple([1] * n), expiry=latest_timestamp(anvil) + 3600)
    domain = Domain(int(anvil.rpc("eth_chainId", []), 16), batcher)
    data = execute_batch_calldata(batch, sign_batch(batch, domain, SIGNER))
    receipt = send(anvil.url, RELAYER, batcher, "0x" + data.hex(), gas=25_000_000)
    return int(receipt["gasUsed"], 16)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="20,100,200")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    rows = []
    with Anvil("--gas-limit", "60000000") as anvil:
        batcher = to_checksum_address(deploy(anvil.url, "PayoutBatcher", OWNER, SIGNER.address))
        send(anvil.url, OWNER, batcher, value=1000 * ETHER)
        token = to_checksum_address(deploy_token(anvil.url))
        transfer = "transfer(address,uint256)"
        send(anvil.url, OWNER, token, calldata(transfer, ["address", "uint256"], [batcher, 10**9]))
        send(anvil.url, OWNER, token, calldata(transfer, ["address", "uint256"], [TREASURY, 10**9]))
        send(anvil.url, TREASURY, token, calldata("approve(address,uint256)", ["address", "uint256"], [batcher, 10**9]))
        gas_of_batch(anvil, batcher, 1, token, treasury=True)  # warm the treasury's slots
        gas_of_batch(anvil, batcher, 1, token)  # and the contract's token balance
        for label, asset, treasury in (("native", NATIVE, False), ("ERC-20 from contract", token, False),
                                       ("ERC-20 from treasury", token, True)):
            for n in sizes:
                gas = gas_of_batch(anvil, batcher, n, asset, treasury)
                per = gas / n
                note = "Disperse-style: 35,000-45,000" if asset != NATIVE else ""
                print(f"{label}, {n} recipients: {gas:,} gas = {per:,.0f} per recipient")
                rows.append((f"{label}, batch of {n}: gas per recipient", round(per), "gas", note))
    record("payouts", rows)


if __name__ == "__main__":
    main()
