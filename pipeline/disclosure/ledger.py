"""The release ledger: everything already published, so a new release is audited together with
it and differencing between releases is caught.

Each release is one entry in an append-only, hash-chained log (``pipeline.audit.AuditLog`` at
``ledger.jsonl``): its name, the population it counts (an id such as the mart generation and
reference date: releases of the same population count the same people), the profile, every
dimension's hierarchy, and the SHA-256 of a Parquet file holding what each cell showed (the
number or the symbol) and its status. The chain and every file's checksum are verified before
the ledger is used, so a past release cannot be quietly edited or dropped.

``joint`` builds the view an attacker holding every release of the population has: a table over
the union of their dimensions, counted from the people themselves (each release's cells are
cells of it, with ``Total`` in the dimensions a release does not have), where each cell is known
to lie in the intersection of what every release showed of it; cells no release shows are
*absent*. Cells published before are *fixed*: secondary suppression of the new release may not
hide them (they are out), so it must protect its primaries around them. The joint release is
then protected and audited like any other, and ``apply_joint`` copies the new release's part
back.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.audit import AuditLog
from pipeline.disclosure.profiles import Profile, get_profile, profile_from_parameters
from pipeline.disclosure.release import ABSENT, PRIMARY, SAFE, Release, showing_intervals
from pipeline.disclosure.table import TOTAL, Dimension, build_table, count_people
from pipeline.errors import AuditTampered

__all__ = ["LedgerEntry", "ReleaseLedger", "apply_joint", "showing"]

EVENT = "disclosure.release"


@dataclass(frozen=True)
class LedgerEntry:
    seq: int
    release_id: str
    name: str
    population: str
    profile: str
    dims: dict[str, dict[str, str]]
    file: str
    sha256: str
    profile_parameters: dict | None = None

    def rules(self) -> Profile:
        """The profile the release was made under (custom profiles are kept whole in the entry)."""
        if not self.profile_parameters:
            return get_profile(self.profile)
        return profile_from_parameters(self.profile_parameters)


class ReleaseLedger:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.log = AuditLog(self.root / "ledger.jsonl")

    def record(self, release: Release, *, name: str, population: str) -> LedgerEntry:
        """Append a release (after it passed its audit) and keep what it showed. Recording the
        same release (name, population and showing) again returns the first entry."""
        table = release.table
        self.root.joinpath("releases").mkdir(parents=True, exist_ok=True)
        scratch = self.root / "releases" / f".{uuid.uuid4().hex}.parquet"
        showing(release).write_parquet(scratch)
        digest = hashlib.sha256(scratch.read_bytes()).hexdigest()
        final = self.root / "releases" / f"{digest}.parquet"
        scratch.replace(final)
        for entry in self.entries(population):  # the same release again (a re-run): recorded once
            if entry.name == name and entry.sha256 == digest:
                return entry
        details = {"release_id": digest[:16], "name": name, "population": population,
                   "profile": release.profile.name, "profile_parameters": release.profile.parameters(),
                   "dims": {d.name: d.parents for d in table.dims},
                   "file": final.name, "sha256": digest, "cells": table.cells.height,
                   "hidden": int(release.hidden.sum())}
        entry = self.log.append(EVENT, details)
        return _entry(entry.seq, details)

    def entries(self, population: str | None = None) -> list[LedgerEntry]:
        """Every recorded release (of one population), after checking the chain and the files."""
        self.log.verify_or_raise()
        out = []
        for e in self.log.entries():
            if e.event != EVENT:
                continue
            entry = _entry(e.seq, e.details)
            path = self.root / "releases" / entry.file
            if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != entry.sha256:
                raise AuditTampered(f"release ledger: the file of release {entry.name!r} ({entry.file}) is missing "
                                    "or was changed", line=entry.seq)
            if population is None or entry.population == population:
                out.append(entry)
        return out

    def joint(self, release: Release, people: pl.DataFrame, population: str, person: str = "person_id", *,
              pending: Sequence[tuple[str, Release]] = (), ignore: str | None = None) -> Release:
        """The new release together with every earlier release of ``population``, and with
        ``pending`` (name, release) pairs cleared but not yet recorded (earlier tables of the
        same package). Entries whose names start with ``ignore`` are left out: they are this
        package's own tables, recorded by a run that did not finish, and are being made again."""
        past = [e for e in self.entries(population) if not (ignore and e.name.startswith(ignore))]
        dims: dict[str, Dimension] = {}
        for d in [*(Dimension(n, p) for e in past for n, p in e.dims.items()),
                  *(d for _, r in pending for d in r.table.dims), *release.table.dims]:
            if d.name in dims and dims[d.name].parents != d.parents:
                raise ValueError(f"dimension {d.name!r} has a different hierarchy in an earlier release; "
                                 "give it another name")
            dims[d.name] = d
        union = list(dims.values())
        table = build_table(count_people(people, union, person), union)
        index = table.cells.select(table.dim_names).with_row_index("cell")
        inf = float("inf")
        lo, hi = np.zeros(table.cells.height), np.full(table.cells.height, inf)
        status = np.full(table.cells.height, ABSENT, dtype=object)
        fixed = np.zeros(table.cells.height, dtype=bool)
        ours = np.zeros(table.cells.height, dtype=bool)
        reasons: list[list[str]] = [[] for _ in range(table.cells.height)]
        showings = [(pl.read_parquet(self.root / "releases" / e.file), e.rules(), e.name) for e in past]
        showings += [(showing(r), r.profile, name) for name, r in pending]
        for frame, profile, name in [*showings, (showing(release), release.profile, None)]:
            cells = _locate(frame, index, table.dim_names)
            was = frame["status"].to_numpy()
            shown = was == SAFE
            if name is not None:  # the new release's own showing is read live, as it is protected
                numbers = frame["shown"].replace(profile.symbol, "0").cast(pl.Int64).to_numpy()
                k_lo, k_hi = showing_intervals(numbers, ~shown, profile)
                lo[cells], hi[cells] = np.maximum(lo[cells], k_lo), np.minimum(hi[cells], k_hi)
                fixed[cells[shown]] = True
                for c, s in zip(cells[~shown], was[~shown], strict=True):
                    if status[c] != PRIMARY:
                        status[c] = s  # a past primary keeps its protection levels
                    reasons[c] = reasons[c] or [f"HIDDEN_IN({name})"]
            else:
                ours[cells] = True
                status[cells] = was
                for c, r in zip(cells, release.reasons, strict=True):
                    reasons[c] = list(r)
        status[fixed & (status != PRIMARY)] = SAFE
        kept = (status != SAFE) & (status != ABSENT) & ~ours
        return Release(table, release.profile, status, reasons, known=(lo, hi), fixed=fixed, kept=kept, joint=True)


def apply_joint(joint: Release, release: Release) -> Release:
    """Copy the joint protection back onto the new release's own cells."""
    index = joint.table.cells.select(joint.table.dim_names).with_row_index("cell")
    frame = release.table.cells.select(release.table.dim_names)
    cells = _locate(frame, index, joint.table.dim_names)
    release.status = joint.status[cells].copy()
    release.reasons = [joint.reasons[c] for c in cells]
    return release


def _locate(frame: pl.DataFrame, index: pl.DataFrame, names: list[str]) -> np.ndarray:
    """Each row's cell in the joint table (``Total`` for the dimensions the frame lacks)."""
    keyed = frame.with_columns(*(pl.lit(TOTAL).alias(n) for n in names if n not in frame.columns))
    found = keyed.select(names).join(index, on=names, how="left", maintain_order="left")["cell"]
    if found.null_count():
        raise ValueError("an earlier release has cells the joint table does not")
    return found.to_numpy().astype(np.int64)


def showing(release: Release) -> pl.DataFrame:
    """What a release shows, cell by cell: its dimensions, the shown text and the status."""
    table = release.table
    return table.cells.select(table.dim_names).with_columns(
        shown=pl.Series(release.shown(), dtype=pl.String), status=pl.Series(release.status.astype(str)))


def _entry(seq: int, details: dict) -> LedgerEntry:
    return LedgerEntry(seq, details["release_id"], details["name"], details["population"], details["profile"],
                       details["dims"], details["file"], details["sha256"], details.get("profile_parameters"))
