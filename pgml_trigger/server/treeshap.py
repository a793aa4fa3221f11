"""Path-dependent TreeSHAP in numpy: exact SHAP values of tree ensembles, with no model library.

The algorithm is Lundberg, Erion and Lee's (2018, "Consistent individualized feature attribution for tree
ensembles", Algorithm 2): for every leaf, the features split on along its path form a small cooperative
game whose value for a coalition S is the leaf value times, per path feature, its "one fraction" (1 when the
row goes the path's way at every split on that feature) if the feature is in S, else its "zero fraction"
(the share of the training cover that went the path's way, the product over its splits). A feature split on
twice along a path is one player, with the products of its fractions, as in the algorithm's UNWIND of a
repeated feature. The Shapley value of player i in such a game is

    value * (one_i - zero_i) * sum_k w_k * e_k(i),   w_k = k! (d - 1 - k)! / d!,

where e_k(i) is the coefficient of t^k in the product over the other players j of (zero_j + one_j * t), and
d the number of players. Algorithm 2 keeps that polynomial while it walks the tree (EXTEND) and divides a
player out of it at each leaf (UNWIND); here the leaves are taken all at once, grouped by their number of
players, and the product without player i is the product of its prefix and suffix polynomials, so each
group costs a few array operations whatever its number of leaves. The sums are of non-negative terms: no
cancellation, and the values agree with shap's C++ and the boosting libraries' own to about 1e-12.

A tree ensemble is stored as arrays over the nodes of all its trees (``Forest``): children, split feature,
threshold, which way a missing value goes, the value of each leaf per output, and each node's cover (the
training rows or hessian weight that reached it: what the library's own TreeSHAP weighs by). The uploader
writes them from the fitted model (pgml_trigger/uploader/explainer/); this module only reads arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

# How a split treats a missing value (Forest.missing): NaN goes the default way; NaN is taken as 0.0 (LightGBM's
# missing type None); NaN and zero go the default way (LightGBM's missing type Zero).
MISSING_DEFAULT, MISSING_AS_ZERO, MISSING_OR_ZERO = 0, 1, 2
_LIGHTGBM_ZERO = 1e-35  # LightGBM's kZeroThreshold: what it takes for zero
_CHUNK = 1 << 21  # elements of the largest temporary array: rows of a batch are taken this many at a time


# A leaf with up to this many players has its contributions for every pattern of one fractions computed once (2^players
# patterns), the first time the forest explains a row, and looked up per row after that; within TABLE_ENTRIES in all
# (8 bytes each). Deeper leaves are computed per row. A 100-tree forest on the 30 breast-cancer features tables all of
# its 2,197 leaves in about 700,000 entries (5.6 MB, built in 0.3 s), and then explains a row in about 0.5 ms, where
# computing every leaf per row took 1.8 ms.
TABLED_PLAYERS = 10
TABLE_ENTRIES = 1 << 22


@dataclass(frozen=True)
class Forest:
    """The trees of an ensemble, as arrays over all their nodes (node ids are global, trees one after another).

    ``left``/``right``: children (-1 at a leaf); ``feature``/``threshold``: the split, a row going left when
    its value is <= threshold (< when ``strict``), compared in float32 when ``float32`` (the library casts its
    input so); ``default_left`` and ``missing``: where a missing value goes (MISSING_*); ``value``: per node and
    output, what a leaf adds to the output (internal nodes: ignored); ``cover``: per node; ``offset``: per
    output, what the model adds to the sum of its trees.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray
    value: np.ndarray
    cover: np.ndarray
    offset: np.ndarray
    strict: bool = False
    float32: bool = False

    @cached_property
    def paths(self) -> Paths:
        return Paths(self)

    @property
    def expected(self) -> np.ndarray:
        """Per output: the output averaged over the training cover as TreeSHAP weighs it (the base of its values)."""
        return self.paths.expected

    def predict(self, X: np.ndarray) -> np.ndarray:
        """[rows, outputs]: the model's raw output, the sum of the leaves each row reaches plus the offset."""
        paths, X = self.paths, np.asarray(X, dtype=np.float64)
        result = np.empty((len(X), self.value.shape[1]))
        for rows in paths.chunks(len(X)):
            result[rows] = self.offset + paths.constant + paths.one_fractions(X[rows])[0] @ self.value[paths.leaves]
        return result

    def shap_values(self, X: np.ndarray, outputs: np.ndarray, signs: np.ndarray | None = None):
        """(contributions [rows, features], the output [rows]) of output ``outputs[r]`` for row r, times
        ``signs[r]`` when given (-1: a binary model's margin seen from its first class). ``X``: NaN where
        missing."""
        paths, X = self.paths, np.asarray(X, dtype=np.float64)
        outputs = np.asarray(outputs, dtype=np.intp)
        signs = np.ones(len(X)) if signs is None else np.asarray(signs, dtype=np.float64)
        phi, total = np.zeros(X.shape), np.zeros(len(X))
        for rows in paths.chunks(len(X)):
            phi[rows], total[rows] = paths.shap_values(X[rows], outputs[rows], signs[rows])
        return phi, total


@dataclass(frozen=True)
class _Group:
    """Leaves computed per row, all with ``players`` players: Paths.leaves[low:high]."""

    players: int
    low: int
    high: int
    zero: np.ndarray  # [leaves, players]
    feature: np.ndarray  # [leaves, players]
    hankel: np.ndarray  # [players, players]


class Paths:
    """Every leaf's path as players (its distinct features, with their zero fractions), leaves ordered by their
    number of players and players leaf-major; and where each player's one fraction comes from: the splits
    (``split_node``, an index into ``nodes``, and ``split_left``: whether the path goes left there), player p's
    being split_node[starts[p]:starts[p + 1]]. Single-leaf trees have no players: their values are ``constant``.
    """

    def __init__(self, forest: Forest):
        self.forest = forest
        split_leaf, split_node, split_left, split_zero, leaves = _splits(forest)
        split_feature = forest.feature[split_node]
        # Players: the distinct (leaf, feature) pairs of the splits; a zero fraction is the product over its splits.
        order = np.lexsort((split_feature, split_leaf))
        key_leaf, key_feature = split_leaf[order], split_feature[order]
        new_player = np.ones(len(order), dtype=bool)
        new_player[1:] = (key_leaf[1:] != key_leaf[:-1]) | (key_feature[1:] != key_feature[:-1])
        first_split = np.flatnonzero(new_player)
        player_of_split = np.cumsum(new_player) - 1  # of order's splits
        player_leaf, player_feature = key_leaf[first_split], key_feature[first_split]
        player_zero = np.multiply.reduceat(split_zero[order], first_split) if len(order) else np.zeros(0)
        count = np.bincount(player_leaf, minlength=len(leaves))
        leaf_zero = np.ones(len(leaves))  # a leaf's share of its tree's cover
        np.multiply.at(leaf_zero, player_leaf, player_zero)
        self.expected = forest.offset + (forest.value[leaves] * leaf_zero[:, None]).sum(axis=0)
        self.constant = forest.value[leaves[count == 0]].sum(axis=0)
        # The leaves with players, fewest first; their players leaf-major (as they were sorted: by leaf, feature).
        kept = np.argsort(count, kind="stable")
        kept = kept[count[kept] > 0]
        rank = np.full(len(leaves), -1, dtype=np.intp)
        rank[kept] = np.arange(len(kept))
        player_order = np.argsort(rank[player_leaf], kind="stable")
        player_rank = np.empty(len(player_order), dtype=np.intp)
        player_rank[player_order] = np.arange(len(player_order))
        split_order = np.argsort(player_rank[player_of_split], kind="stable")
        self.starts = np.searchsorted(player_rank[player_of_split][split_order], np.arange(len(player_order)))
        self.nodes, self.split_node = np.unique(split_node[order][split_order], return_inverse=True)
        self.split_left = split_left[order][split_order]
        self.leaves, self.count = leaves[kept], count[kept]
        self.first = np.cumsum(self.count) - self.count
        self.player_leaf = np.repeat(np.arange(len(kept)), self.count)
        self.player_slot = np.arange(len(player_order)) - np.repeat(self.first, self.count)
        self.player_zero, self.player_feature = player_zero[player_order], player_feature[player_order]
        self.leaf_values = forest.value[self.leaves]
        self.tabled = _tabled(self.count)
        self.tabled_players = int(self.count[:self.tabled].sum())
        self.bits = np.left_shift(1, self.player_slot[:self.tabled_players])
        self.groups = []
        for players in np.unique(self.count[self.tabled:]):
            low = self.tabled + int(np.searchsorted(self.count[self.tabled:], players))
            high = self.tabled + int(np.searchsorted(self.count[self.tabled:], players, side="right"))
            span = slice(self.first[low], self.first[low] + (high - low) * players)
            self.groups.append(_Group(players=int(players), low=low, high=high,
                                      zero=self.player_zero[span].reshape(high - low, players),
                                      feature=self.player_feature[span].reshape(high - low, players),
                                      hankel=_hankel(int(players))))

    @cached_property
    def table(self) -> np.ndarray:
        """Per tabled leaf, its players' contributions (for a leaf value of 1) under every pattern of one fractions,
        [pattern, player], leaves one after another: the entry of player p under pattern q is lookup[p] + q * count."""
        count, first = self.count[:self.tabled], self.first[:self.tabled]
        sizes = np.left_shift(1, count) * count
        offsets = np.cumsum(sizes) - sizes
        table = np.zeros(int(sizes.sum()))
        for players in np.unique(count):
            members = np.flatnonzero(count == players)
            patterns = (np.arange(1 << players)[:, None] >> np.arange(players)) & 1  # [pattern, player]
            step = max(1, _CHUNK // ((1 << players) * players * players))
            for low in range(0, len(members), step):
                chosen = members[low:low + step]
                zero = self.player_zero[first[chosen][:, None] + np.arange(players)]
                one = np.broadcast_to(patterns[:, None, :], (1 << players, len(chosen), players))
                contributions = _shapley(zero, one, _hankel(int(players)))  # [pattern, leaves, players]
                entries = offsets[chosen][:, None] + np.arange((1 << players) * players)
                table[entries] = contributions.transpose(1, 0, 2).reshape(len(chosen), -1)
        self.lookup = offsets[self.player_leaf[:self.tabled_players]] + self.player_slot[:self.tabled_players]
        return table

    def chunks(self, n_rows: int):
        """Slices of rows small enough that a [rows, splits] array stays within _CHUNK elements."""
        step = max(1, _CHUNK // max(1, len(self.split_node)))
        return [slice(low, low + step) for low in range(0, n_rows, step)]

    def shap_values(self, X: np.ndarray, outputs: np.ndarray, signs: np.ndarray):
        forest = self.forest
        n_rows, n_features = X.shape
        phi = np.zeros((n_rows, n_features))
        values = self.leaf_values[:, outputs].T * signs[:, None]  # [rows, leaves]
        base = (forest.offset[outputs] + self.constant[outputs]) * signs
        reached, ones, patterns = self.one_fractions(X)
        total = base + (values * reached).sum(axis=1)
        row_offsets = np.arange(n_rows)[:, None] * n_features
        if self.tabled:
            table = self.table
            leaf = self.player_leaf[:self.tabled_players]
            contributions = table[self.lookup + patterns[:, leaf] * self.count[leaf]] * values[:, leaf]
            phi += np.bincount((row_offsets + self.player_feature[:self.tabled_players]).ravel(),
                               weights=contributions.ravel(), minlength=n_rows * n_features).reshape(phi.shape)
        for group in self.groups:
            players = group.players
            step = max(1, _CHUNK // (n_rows * players * players))  # leaves at a time: _shapley's arrays
            for low in range(group.low, group.high, step):
                high = min(low + step, group.high)
                span = slice(self.first[low], self.first[low] + (high - low) * players)
                one = ones[:, span].reshape(n_rows, high - low, players)
                zero = group.zero[low - group.low:high - group.low]
                contributions = _shapley(zero, one, group.hankel) * values[:, low:high, None]
                index = (row_offsets[:, :, None] + group.feature[None, low - group.low:high - group.low]).ravel()
                phi += np.bincount(index, weights=contributions.ravel(),
                                   minlength=n_rows * n_features).reshape(phi.shape)
        return phi, total

    def one_fractions(self, X: np.ndarray):
        """(reached [rows, leaves], one fractions [rows, players] as booleans, and per tabled leaf its pattern
        [rows, tabled leaves]: its players' one fractions as the bits of a number)."""
        forest = self.forest
        if forest.float32:
            X = X.astype(np.float32).astype(np.float64)
        nodes = self.nodes
        values = X[:, forest.feature[nodes]]
        kind = forest.missing[nodes]
        gone = np.isnan(values)
        if np.any(kind == MISSING_AS_ZERO):
            as_zero = gone & (kind == MISSING_AS_ZERO)
            values = np.where(as_zero, 0.0, values)
            gone &= ~as_zero
        if np.any(kind == MISSING_OR_ZERO):
            gone |= (kind == MISSING_OR_ZERO) & (np.abs(values) <= _LIGHTGBM_ZERO)
        with np.errstate(invalid="ignore"):
            goes_left = values < forest.threshold[nodes] if forest.strict else values <= forest.threshold[nodes]
        goes_left = np.where(gone, forest.default_left[nodes], goes_left)
        if not len(self.leaves):
            return np.zeros((len(X), 0), dtype=bool), np.zeros((len(X), 0), dtype=bool), np.zeros((len(X), 0))
        ones = np.logical_and.reduceat(goes_left[:, self.split_node] == self.split_left, self.starts, axis=1)
        reached = np.logical_and.reduceat(ones, self.first, axis=1)
        patterns = np.add.reduceat(ones[:, :self.tabled_players] * self.bits, self.first[:self.tabled], axis=1) \
            if self.tabled else np.zeros((len(X), 0), dtype=np.intp)
        return reached, ones, patterns


def path_splits(left: np.ndarray, right: np.ndarray) -> int:
    """How many splits the leaves' paths hold in all: what explaining a row costs, about 25 ns each (a 100-tree
    forest on the breast-cancer data: 21,000), and what Paths holds a few arrays of."""
    parent = _parents(left, right)
    child, total = np.flatnonzero(left < 0), 0
    while len(child):
        child = parent[child]
        child = child[child >= 0]
        total += len(child)
    return total


def _parents(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    parent = np.full(len(left), -1, dtype=np.intp)
    internal = np.flatnonzero(left >= 0)
    parent[left[internal]] = internal
    parent[right[internal]] = internal
    return parent


def _splits(forest: Forest):
    """Every split on every leaf's path: (leaf as a position in ``leaves``, node, whether the path goes left there,
    its zero fraction: the child's share of the node's cover), and the leaves' node ids."""
    parent = _parents(forest.left, forest.right)
    leaves = np.flatnonzero(forest.left < 0)
    split_leaf, split_node = [np.zeros(0, dtype=np.intp)], [np.zeros(0, dtype=np.intp)]
    split_left, split_zero = [np.zeros(0, dtype=bool)], [np.zeros(0)]
    position, child = np.arange(len(leaves)), leaves
    while len(child):  # up one level, for every leaf at once
        node = parent[child]
        up = node >= 0
        position, child, node = position[up], child[up], node[up]
        split_leaf.append(position)
        split_node.append(node)
        split_left.append(forest.left[node] == child)
        with np.errstate(invalid="ignore", divide="ignore"):  # a node no training row reached: 0, as CatBoost has it
            split_zero.append(np.nan_to_num(forest.cover[child] / forest.cover[node]))
        child = node
    return (np.concatenate(split_leaf), np.concatenate(split_node), np.concatenate(split_left),
            np.concatenate(split_zero), leaves)


def _tabled(count: np.ndarray) -> int:
    """How many of the leaves (ordered by players) are tabled: up to TABLED_PLAYERS players, TABLE_ENTRIES in all."""
    entries = np.cumsum(np.left_shift(1, np.minimum(count, TABLED_PLAYERS)) * count)
    return int(np.sum((count <= TABLED_PLAYERS) & (entries <= TABLE_ENTRIES)))


def _hankel(players: int) -> np.ndarray:
    """H[a, b] = w_{a+b}, the Shapley weight of a coalition of a + b other players (0 beyond players - 1)."""
    weights = np.array([1.0 / (players * math.comb(players - 1, k)) for k in range(players)] + [0.0] * players)
    return weights[np.add.outer(np.arange(players), np.arange(players))]


def _shapley(zero: np.ndarray, one: np.ndarray, hankel: np.ndarray) -> np.ndarray:
    """[..., leaves, players]: (one_i - zero_i) * sum_k w_k e_k(i) per player of leaves valued 1; ``zero``
    [leaves, players], ``one`` [..., leaves, players]."""
    one = one.astype(np.float64)
    zero = np.broadcast_to(zero, one.shape)
    players = one.shape[-1]
    # prefix[..., i, :]: the coefficients of the product over the players before i of (zero + one * t); suffix:
    # over the players after i. Their product is the polynomial without player i.
    prefix = np.zeros((*one.shape, players))
    suffix = np.zeros((*one.shape, players))
    prefix[..., 0, 0] = 1.0
    suffix[..., players - 1, 0] = 1.0
    for i in range(players - 1):
        prefix[..., i + 1, :] = prefix[..., i, :] * zero[..., i, None]
        prefix[..., i + 1, 1:] += prefix[..., i, :-1] * one[..., i, None]
        j = players - 1 - i
        suffix[..., j - 1, :] = suffix[..., j, :] * zero[..., j, None]
        suffix[..., j - 1, 1:] += suffix[..., j, :-1] * one[..., j, None]
    return (one - zero) * ((prefix @ hankel) * suffix).sum(axis=-1)
