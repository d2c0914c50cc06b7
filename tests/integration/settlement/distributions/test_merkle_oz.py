"""The Python StandardMerkleTree equals @openzeppelin/merkle-tree's: dump, root, every proof."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from settlement.distributions.merkle import CLAIM_ENCODING, StandardMerkleTree, claim_tree, verify

ROOT = Path(__file__).resolve().parents[4]
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def oz(encoding, values) -> dict:
    out = subprocess.run(["node", str(ROOT / "tests/support/oz_merkle.cjs")], cwd=ROOT, check=True,
                         input=json.dumps({"encoding": list(encoding), "values": values}),
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 257])
def test_claim_tree_matches_openzeppelin(n):
    rnd = random.Random(n)
    shares = [(i, "0x" + rnd.randbytes(20).hex(), rnd.randrange(1, 10**30)) for i in range(n)]
    mine = claim_tree(shares)
    ref = oz(CLAIM_ENCODING, [list(v) for v, _ in mine.values])
    assert mine.root == ref["root"]
    assert mine.dump() == ref["dump"]
    for i, proof in enumerate(ref["proofs"]):
        assert mine.proof(i) == proof
        assert verify(mine.root, CLAIM_ENCODING, mine.values[i][0], proof)
    if n > 1:
        assert not verify(mine.root, CLAIM_ENCODING, ("0", shares[1][1], str(shares[1][2])), mine.proof(0))


def test_other_static_types_match():
    enc = ("address", "bool", "bytes32", "uint8")
    values = [["0x" + "ab" * 20, True, "0x" + "01" * 32, "7"], ["0x" + "cd" * 20, False, "0x" + "02" * 32, "255"]]
    mine = StandardMerkleTree.of(values, enc)
    ref = oz(enc, values)
    assert mine.root == ref["root"] and [mine.proof(i) for i in range(2)] == ref["proofs"]
