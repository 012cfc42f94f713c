"""Hierarchical count tables: atoms, cells, and the model matrix that ties them together.

A table has dimensions, each a hierarchy of values (ward -> locality -> ``Total``; age band ->
``Total``). *Atoms* are the finest cells: one value at the bottom of every dimension, the full
cross product (zeros included, since a published zero is information too). Every *cell* is a
choice of one value at any level of each dimension; its count is the sum of the atoms under it.
``matrix`` (atoms x cells, 0/1, scipy sparse) is that relation, so ``cell counts = matrixᵀ ·
atom counts`` and margins are just more columns. Counts are of distinct people: each person
belongs to exactly one atom (``count_people`` checks), so every margin is a sum.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import sparse

__all__ = ["TOTAL", "CountTable", "Dimension", "build_magnitude_table", "build_table", "count_people"]

TOTAL = "Total"


@dataclass(frozen=True)
class Dimension:
    """A hierarchy: each value's parent (top-level values have parent ``Total``)."""

    name: str
    parents: dict[str, str] = field(hash=False)

    @classmethod
    def flat(cls, name: str, values) -> Dimension:
        return cls(name, {str(v): TOTAL for v in values})

    @classmethod
    def grouped(cls, name: str, groups: dict[str, list[str]]) -> Dimension:
        """Leaves under named groups under ``Total`` (e.g. wards under localities)."""
        parents = {g: TOTAL for g in groups}
        for group, leaves in groups.items():
            parents |= {str(v): group for v in leaves}
        return cls(name, parents)

    def __post_init__(self):
        if TOTAL in self.parents:
            raise ValueError(f"dimension {self.name}: '{TOTAL}' is reserved for the margin")
        for value in self.parents:
            seen, node = set(), value
            while node != TOTAL:
                if node in seen or node not in self.parents:
                    raise ValueError(f"dimension {self.name}: value {value!r} does not lead to '{TOTAL}'")
                seen.add(node)
                node = self.parents[node]

    @property
    def leaves(self) -> list[str]:
        inner = set(self.parents.values())
        return [v for v in self.parents if v not in inner]

    def chain(self, leaf: str) -> list[str]:
        """``leaf`` and every value above it, ending with ``Total``."""
        out = [leaf]
        while out[-1] != TOTAL:
            out.append(self.parents[out[-1]])
        return out


@dataclass
class CountTable:
    dims: list[Dimension]
    atoms: pl.DataFrame  # one row per atom: the dimension columns and "count", in matrix row order
    cells: pl.DataFrame  # one row per cell: the dimension columns, "count", "inner" (is an atom)
    matrix: sparse.csc_matrix  # atoms x cells

    @property
    def dim_names(self) -> list[str]:
        return [d.name for d in self.dims]

    def cell_index(self, **values) -> int:
        """The index of the cell with these values (unnamed dimensions: ``Total``)."""
        row = self.cells.with_row_index("i").filter(
            pl.all_horizontal(pl.col(d) == str(values.get(d, TOTAL)) for d in self.dim_names))
        if row.height != 1:
            raise KeyError(f"no cell {values}")
        return int(row["i"][0])


def build_table(counts: pl.DataFrame, dims: list[Dimension], count: str = "count") -> CountTable:
    """The table whose atoms have the given counts (missing combinations are 0). ``counts`` has
    one row per leaf combination present; a value that is not a leaf of its dimension is an error."""
    names = [d.name for d in dims]
    for d in dims:
        unknown = set(counts[d.name].cast(pl.String).unique().to_list()) - set(d.leaves)
        if unknown:
            raise ValueError(f"dimension {d.name}: values {sorted(unknown)[:5]} are not leaves of its hierarchy")
    grid = pl.DataFrame(list(itertools.product(*(d.leaves for d in dims))), schema=names, orient="row")
    given = counts.select(*(pl.col(n).cast(pl.String) for n in names), pl.col(count).cast(pl.Int64).alias("count"))
    if given.select(names).is_duplicated().any():
        raise ValueError("each leaf combination must appear once")
    atoms = grid.join(given, on=names, how="left", maintain_order="left").with_columns(pl.col("count").fill_null(0))
    members = atoms.with_row_index("atom").with_columns(
        pl.col(d.name).map_elements(d.chain, return_dtype=pl.List(pl.String)) for d in dims)
    for n in names:
        members = members.explode(n)
    cells = members.group_by(names, maintain_order=True).agg(pl.col("count").sum()) \
        .sort(names).with_row_index("cell")
    members = members.join(cells.select(*names, "cell"), on=names)
    matrix = sparse.csc_matrix((np.ones(members.height, dtype=np.int8),
                                (members["atom"].to_numpy(), members["cell"].to_numpy())),
                               shape=(atoms.height, cells.height))
    leaf_sets = {d.name: set(d.leaves) for d in dims}
    inner = pl.all_horizontal(pl.col(n).is_in(list(leaf_sets[n])) for n in names)
    return CountTable(dims, atoms, cells.drop("cell").with_columns(inner=inner), matrix)


def count_people(frame: pl.DataFrame, dims: list[Dimension], person: str = "person_id") -> pl.DataFrame:
    """Distinct people per leaf combination (not rows). Each person must fall in one atom:
    otherwise margins would not be sums, and the table model would not hold."""
    names = [d.name for d in dims]
    distinct = frame.select(person, *names).unique()
    split = distinct.group_by(person).len().filter(pl.col("len") > 1).height
    if split:
        raise ValueError(f"{split} people fall in more than one cell of {names}: count them in one place, "
                         "or publish separate tables")
    return distinct.group_by(names).agg(pl.len().alias("count"))


def build_magnitude_table(frame: pl.DataFrame, dims: list[Dimension], value: str, person: str = "person_id"
                          ) -> CountTable:
    """A magnitude table (e.g. social care cost): each cell's total of ``value`` (in whole units)
    as its "count", and, for the primary rules, ``contributors`` (people with a non-zero value)
    and ``top1``/``top2`` (the two largest contributions, per person). Each person must fall in
    one atom, as for counts."""
    names = [d.name for d in dims]
    per_person = frame.group_by(person, *names).agg(pl.col(value).sum().round(0).cast(pl.Int64).alias("v"))
    split = per_person.group_by(person).len().filter(pl.col("len") > 1).height
    if split:
        raise ValueError(f"{split} people fall in more than one cell of {names}")
    if per_person["v"].min() is not None and per_person["v"].min() < 0:
        raise ValueError(f"column {value!r} has negative values: magnitude rules need non-negative contributions")
    table = build_table(per_person.group_by(names).agg(pl.col("v").sum().alias("count")), dims, "count")
    expanded = per_person.filter(pl.col("v") > 0).with_columns(
        pl.col(d.name).map_elements(d.chain, return_dtype=pl.List(pl.String)) for d in dims)
    for n in names:
        expanded = expanded.explode(n)
    stats = expanded.group_by(names).agg(pl.len().alias("contributors"),
                                         pl.col("v").top_k(2).sort(descending=True).alias("top"))
    stats = stats.select(*names, "contributors", top1=pl.col("top").list.get(0, null_on_oob=True),
                         top2=pl.col("top").list.get(1, null_on_oob=True))
    cells = table.cells.join(stats, on=names, how="left", maintain_order="left").with_columns(
        pl.col("contributors", "top1", "top2").fill_null(0).cast(pl.Int64))
    return CountTable(table.dims, table.atoms, cells, table.matrix)
