"""RFC 9162 Merkle trees (projections.merkle) against a naive transcription of the RFC's recursive definitions."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from projections import merkle


def naive_mth(data: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 written as the RFC says, over the leaves' data."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1 << ((len(data) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:])).digest()


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n])."""
    if len(data) == 1:
        return []
    k = 1 << ((len(data) - 1).bit_length() - 1)
    if m < k:
        return naive_path(m, data[:k]) + [naive_mth(data[k:])]
    return naive_path(m - k, data[k:]) + [naive_mth(data[:k])]


def naive_subproof(m: int, data: list[bytes], whole: bool) -> list[bytes]:
    """RFC 9162 2.1.4.1 SUBPROOF(m, D[n], b)."""
    if m == len(data):
        return [] if whole else [naive_mth(data)]
    k = 1 << ((len(data) - 1).bit_length() - 1)
    if m <= k:
        return naive_subproof(m, data[:k], whole) + [naive_mth(data[k:])]
    return naive_subproof(m - k, data[k:], False) + [naive_mth(data[:k])]


def tree(n: int) -> tuple[list[bytes], list[bytes]]:
    data = [i.to_bytes(4, "big") for i in range(n)]
    return data, [merkle.leaf_hash(d) for d in data]


def flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


sizes = st.integers(min_value=1, max_value=130)


def test_the_empty_tree_and_a_single_leaf_have_the_rfc_heads() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest() == merkle.Frontier().root()
    assert merkle.root([merkle.leaf_hash(b"x")]) == hashlib.sha256(b"\x00x").digest()


@given(sizes)
def test_root_and_the_frontier_equal_the_naive_tree_head(n: int) -> None:
    data, leaves = tree(n)
    frontier = merkle.Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    assert merkle.root(leaves) == naive_mth(data) == frontier.root()
    assert frontier.size == n
    assert len(frontier.nodes) == bin(n).count("1")  # O(log n) memory: one node per perfect subtree


@given(sizes, st.data())
def test_every_inclusion_path_is_the_rfcs_and_verifies(n: int, draw: st.DataObject) -> None:
    data, leaves = tree(n)
    head = merkle.root(leaves)
    index = draw.draw(st.integers(0, n - 1))
    path = merkle.inclusion_path(leaves, index)
    assert path == naive_path(index, data) == merkle.inclusion_paths(leaves)[index]
    assert merkle.root_from_path(leaves[index], index, n, path) == head
    assert merkle.verify_inclusion(leaves[index], index, n, path, head)


def test_every_inclusion_proof_of_every_index_and_size_up_to_40_verifies_and_fails_when_altered() -> None:
    for n in range(1, 41):
        data, leaves = tree(n)
        head = merkle.root(leaves)
        for index, path in enumerate(merkle.inclusion_paths(leaves)):
            assert merkle.verify_inclusion(leaves[index], index, n, path, head)
            assert not merkle.verify_inclusion(flip(leaves[index]), index, n, path, head)
            for i in range(len(path)):
                altered = [*path[:i], flip(path[i]), *path[i + 1 :]]
                assert not merkle.verify_inclusion(leaves[index], index, n, altered, head)
            for other in range(n):
                if other != index:
                    assert not merkle.verify_inclusion(leaves[index], other, n, path, head)
            # A path does not fit a size whose tree needs another number of hashes for this leaf. (The
            # same hashes can prove a leaf in trees of two sizes: the size is authenticated by what is
            # signed or published with the root, as in RFC 9162.)
            for size in range(index + 1, n + 3):
                if len(naive_path(index, [b""] * size)) != len(path):
                    assert not merkle.verify_inclusion(leaves[index], index, size, path, head)


@given(sizes, st.data())
def test_a_path_too_long_or_too_short_or_an_index_past_the_size_is_inconsistent(n: int, draw: st.DataObject) -> None:
    _, leaves = tree(n)
    index = draw.draw(st.integers(0, n - 1))
    path = merkle.inclusion_path(leaves, index)
    for bad in ([*path, leaves[0]], path[:-1] if path else None):
        if bad is not None:
            try:
                merkle.root_from_path(leaves[index], index, n, bad)
            except ValueError:
                pass
            else:
                raise AssertionError("an inconsistent path gave a root")
    for bad_index in (n, n + 5, -1):
        try:
            merkle.root_from_path(leaves[index], bad_index, n, path)
        except ValueError:
            pass
        else:
            raise AssertionError("an index outside the tree gave a root")


def test_consistency_proofs_for_every_pair_of_sizes_up_to_64_are_the_rfcs_and_verify() -> None:
    data, leaves = tree(64)
    heads = [merkle.root(leaves[:n]) for n in range(65)]
    for n in range(1, 65):
        for m in range(1, n + 1):
            proof = merkle.consistency_path(leaves[:n], m)
            assert proof == (naive_subproof(m, data[:n], True) if m < n else [])
            assert merkle.verify_consistency(m, n, heads[m], heads[n], proof)
            assert not merkle.verify_consistency(m, n, flip(heads[m]), heads[n], proof)
            assert not merkle.verify_consistency(m, n, heads[m], flip(heads[n]), proof)
            for i in range(len(proof)):
                altered = [*proof[:i], flip(proof[i]), *proof[i + 1 :]]
                assert not merkle.verify_consistency(m, n, heads[m], heads[n], altered)
            if m < n:
                assert not merkle.verify_consistency(m, n, heads[m], heads[n], proof[:-1])
                assert not merkle.verify_consistency(m, n, heads[m], heads[n], [*proof, leaves[0]])


def test_a_rewritten_old_leaf_breaks_consistency_even_when_the_new_tree_is_rehashed() -> None:
    _, leaves = tree(20)
    old_head = merkle.root(leaves[:13])
    rewritten = [*leaves[:5], merkle.leaf_hash(b"forged"), *leaves[6:]]
    proof = merkle.consistency_path(rewritten, 13)
    assert not merkle.verify_consistency(13, 20, old_head, merkle.root(rewritten), proof)


def test_the_empty_tree_is_a_prefix_of_every_tree_and_a_tree_not_of_a_smaller_one() -> None:
    _, leaves = tree(5)
    assert merkle.consistency_path(leaves, 0) == []
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, merkle.root(leaves), [])
    assert not merkle.verify_consistency(5, 3, merkle.root(leaves), merkle.root(leaves[:3]), [])
    assert not merkle.verify_consistency(3, 5, merkle.root(leaves[:3]), merkle.root(leaves), [])


@given(st.lists(st.binary(max_size=8), max_size=70))
def test_a_frontier_restored_from_its_state_continues_the_same_tree(data: list[bytes]) -> None:
    leaves = [merkle.leaf_hash(d) for d in data]
    first = merkle.Frontier()
    for leaf in leaves[: len(leaves) // 2]:
        first.append(leaf)
    restored = merkle.Frontier(first.size, list(first.nodes))
    for leaf in leaves[len(leaves) // 2 :]:
        restored.append(leaf)
    assert restored.root() == merkle.root(leaves) == naive_mth(data)


tampering = st.sampled_from(["none", "leaf", "path", "index", "longer", "shorter", "hex"])


@given(sizes, st.lists(st.tuples(st.integers(0, 10_000), tampering), min_size=1, max_size=60), st.integers(1, 300))
def test_a_proven_tree_decides_every_path_as_rfc_verification_does_in_any_order(n, queries, max_nodes) -> None:
    _, leaves = tree(n)
    head = merkle.root(leaves)
    paths = merkle.inclusion_paths(leaves)
    proven = merkle.ProvenTree(n, head, max_nodes=max_nodes)  # a full tree records nothing more: still exact
    for seed, how in queries:
        index = seed % n
        leaf, path, at = leaves[index], list(paths[index]), index
        if how == "leaf":
            leaf = flip(leaf)
        elif how == "path" and path:
            i = seed % len(path)
            path[i] = flip(path[i])
        elif how == "index":
            at = (index + 1 + seed) % (n + 1)
        elif how == "longer":
            path.append(leaves[0])
        elif how == "shorter" and path:
            path.pop()
        expected = merkle.verify_inclusion(leaf, at, n, path, head)
        wire = [h.hex() for h in path] + (["zz"] if how == "hex" else [])
        assert proven.verify(leaf, at, wire) == (expected and how != "hex"), (index, how)
    # At most every place of every level; past the cap, at most one more path's places (leaf, 2 per level, carries).
    assert len(proven.nodes) <= min(2 * n + n.bit_length(), max_nodes + 3 * n.bit_length())


def test_a_proven_tree_hashes_a_second_path_only_up_to_the_first_node_it_shares(monkeypatch) -> None:
    _, leaves = tree(1024)
    proven = merkle.ProvenTree(1024, merkle.root(leaves))
    paths = merkle.inclusion_paths(leaves)
    assert proven.verify(leaves[0], 0, [h.hex() for h in paths[0]])
    calls = []
    real = merkle.node_hash
    monkeypatch.setattr(merkle, "node_hash", lambda left, right: calls.append(1) or real(left, right))
    assert proven.verify(leaves[1], 1, [h.hex() for h in paths[1]])
    assert len(calls) == 0  # leaf 1 was leaf 0's sibling: proven already, its path only compared
    assert proven.verify(leaves[2], 2, [h.hex() for h in paths[2]]) and len(calls) == 1  # its parent is proven
    # A forged leaf 4 is refused when its hashes meet node (level 2, index 1), proven by leaf 0's path.
    assert not proven.verify(flip(leaves[4]), 4, [h.hex() for h in paths[4]]) and len(calls) == 3
