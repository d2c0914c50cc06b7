"""OpenZeppelin `StandardMerkleTree` in Python (pure, no I/O).

Byte for byte what `@openzeppelin/merkle-tree` 1.x builds, so its JSON dump,
root and proofs are what OpenZeppelin's tooling and `MerkleProof.verify`
expect (tests/integration/settlement/distributions/test_merkle_oz.py checks
against the npm package itself):

- leaf = keccak256(keccak256(abi.encode(values))) (double hash: a leaf can
  never be mistaken for an inner node of 64 bytes);
- leaves sorted by hash (the package's default `sortLeaves`);
- the tree is a flat array, root at 0, children of i at 2i+1 and 2i+2,
  leaves at the end in reverse order; node = keccak256(sort(a, b)) (sorted
  pairs: a proof needs no left/right flags);
- dump: {"format": "standard-v1", "leafEncoding": [...], "tree": [hex...],
  "values": [{"value": [...], "treeIndex": n}, ...]} in input order.

Only static ABI types are needed here (uint<N>, address, bool, bytes32).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_utils import keccak

CLAIM_ENCODING = ("uint256", "address", "uint256")  # (index, account, amount)


def _word(abi_type: str, value: object) -> bytes:
    if abi_type.startswith("uint"):
        v = int(value)  # type: ignore[arg-type]
        if not 0 <= v < 2**256:
            raise ValueError(f"{abi_type} out of range: {value}")
        return v.to_bytes(32, "big")
    if abi_type == "address":
        s = str(value)
        raw = bytes.fromhex(s[2:] if s.startswith("0x") else s)
        if len(raw) != 20:
            raise ValueError(f"not an address: {value}")
        return raw.rjust(32, b"\0")
    if abi_type == "bool":
        return (1 if value else 0).to_bytes(32, "big")
    if abi_type == "bytes32":
        raw = bytes.fromhex(str(value).removeprefix("0x"))
        if len(raw) != 32:
            raise ValueError(f"not 32 bytes: {value}")
        return raw
    raise ValueError(f"unsupported leaf type {abi_type}")


def leaf_hash(encoding: Sequence[str], value: Sequence[object]) -> bytes:
    if len(encoding) != len(value):
        raise ValueError("value does not match the leaf encoding")
    return keccak(keccak(b"".join(_word(t, v) for t, v in zip(encoding, value, strict=True))))


def node_hash(a: bytes, b: bytes) -> bytes:
    return keccak(a + b if a <= b else b + a)


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass(frozen=True)
class StandardMerkleTree:
    tree: tuple[bytes, ...]
    values: tuple[tuple[tuple[object, ...], int], ...]  # (value, tree index), input order
    encoding: tuple[str, ...]

    @classmethod
    def of(cls, values: Sequence[Sequence[object]], encoding: Sequence[str]) -> StandardMerkleTree:
        if not values:
            raise ValueError("a tree needs at least one leaf")
        hashed = sorted((leaf_hash(encoding, v), i) for i, v in enumerate(values))
        n = len(hashed)
        tree: list[bytes] = [b""] * (2 * n - 1)
        for k, (h, _) in enumerate(hashed):
            tree[len(tree) - 1 - k] = h
        for i in range(len(tree) - 1 - n, -1, -1):
            tree[i] = node_hash(tree[2 * i + 1], tree[2 * i + 2])
        index = [0] * n
        for k, (_, vi) in enumerate(hashed):
            index[vi] = len(tree) - 1 - k
        return cls(tuple(tree), tuple((tuple(v), index[i]) for i, v in enumerate(values)), tuple(encoding))

    @property
    def root(self) -> str:
        return _hex(self.tree[0])

    def proof(self, value_index: int) -> list[str]:
        i = self.values[value_index][1]
        out = []
        while i > 0:
            sibling = i - 1 if i % 2 == 0 else i + 1
            out.append(_hex(self.tree[sibling]))
            i = (i - 1) // 2
        return out

    def dump(self) -> dict:
        return {"format": "standard-v1", "leafEncoding": list(self.encoding),
                "tree": [_hex(h) for h in self.tree],
                "values": [{"value": list(v), "treeIndex": ti} for v, ti in self.values]}


def verify(root: str, encoding: Sequence[str], value: Sequence[object], proof: Sequence[str]) -> bool:
    h = leaf_hash(encoding, value)
    for p in proof:
        h = node_hash(h, bytes.fromhex(p.removeprefix("0x")))
    return _hex(h) == root.lower()


def claim_tree(shares: Sequence[tuple[int, str, int]]) -> StandardMerkleTree:
    """The claim tree of a distribution: leaves (index, account, amount) as decimal strings and
    lowercase addresses, as the OpenZeppelin dump keeps them."""
    return StandardMerkleTree.of([(str(i), a.lower(), str(amt)) for i, a, amt in shares], CLAIM_ENCODING)
