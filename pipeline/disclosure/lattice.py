"""The node lattice of a table: every dimension's values as integer nodes, and each cell and
atom addressed by a mixed-radix code of its nodes, so the neighbours of a cell are found by
arithmetic instead of joins. Used by the hypercube engine (``pipeline.disclosure.cube``)."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.disclosure.table import TOTAL, CountTable

__all__ = ["Lattice"]


class Lattice:
    def __init__(self, table: CountTable):
        self.table = table
        self.k = len(table.dims)
        self.nodes: list[list[str]] = []
        self.parent: list[np.ndarray] = []
        self.children: list[list[list[int]]] = []
        for d in table.dims:
            names = [TOTAL, *d.parents]
            index = {n: i for i, n in enumerate(names)}
            parent = np.array([-1] + [index[d.parents[n]] for n in names[1:]], dtype=np.int64)
            children: list[list[int]] = [[] for _ in names]
            for i in range(1, len(names)):
                children[parent[i]].append(i)
            self.nodes.append(names)
            self.parent.append(parent)
            self.children.append(children)
        sizes = [len(n) for n in self.nodes]
        self.strides = np.array([int(np.prod(sizes[i + 1:])) for i in range(self.k)], dtype=np.int64)
        self.size = int(np.prod(sizes))
        self.cell_nodes = self._node_columns(table.cells)
        self.atom_nodes = self._node_columns(table.atoms)
        self.cell_of = np.full(self.size, -1, dtype=np.int64)
        self.cell_of[self.cell_nodes @ self.strides] = np.arange(table.cells.height)
        self.atom_of = np.full(self.size, -1, dtype=np.int64)
        self.atom_of[self.atom_nodes @ self.strides] = np.arange(table.atoms.height)
        self.matrix = table.matrix.tocsc()
        self._leaves: dict[tuple[int, int], np.ndarray] = {}
        self._siblings: dict[tuple[int, int], np.ndarray] = {}

    def _node_columns(self, frame: pl.DataFrame) -> np.ndarray:
        cols = []
        for d, name in enumerate(self.table.dim_names):
            mapping = {n: i for i, n in enumerate(self.nodes[d])}
            cols.append(frame[name].replace_strict(mapping, return_dtype=pl.Int64).to_numpy())
        return np.stack(cols, axis=1)

    def chain(self, d: int, node: int, stop: int = -1) -> list[int]:
        """``node`` and its ancestors, up to and including ``stop`` (default: ``Total``)."""
        out = [node]
        while out[-1] != stop and self.parent[d][out[-1]] != -1:
            out.append(int(self.parent[d][out[-1]]))
        return out

    def atoms_under(self, cell: int) -> np.ndarray:
        m = self.matrix
        return m.indices[m.indptr[cell]:m.indptr[cell + 1]]

    def leaves_under(self, d: int, node: int) -> np.ndarray:
        key = (d, node)
        if key not in self._leaves:
            out, stack = [], [node]
            while stack:
                n = stack.pop()
                stack.extend(self.children[d][n]) if self.children[d][n] else out.append(n)
            self._leaves[key] = np.array(sorted(out), dtype=np.int64)
        return self._leaves[key]

    def sibling_array(self, d: int, node: int) -> np.ndarray:
        key = (d, node)
        if key not in self._siblings:
            self._siblings[key] = np.array(self.siblings(d, node), dtype=np.int64)
        return self._siblings[key]

    def siblings(self, d: int, node: int) -> list[int]:
        p = self.parent[d][node]
        return [] if p < 0 else [c for c in self.children[d][p] if c != node]
