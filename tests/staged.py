"""Reading staged files in tests: they are encrypted, one data-encryption key per file."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline.ingest.staging import read_staged
from pipeline.keys import ALL_ROLES, open_keystore


def staged_frame(settings, path: Path, keystore=None, columns: list[str] | None = None) -> pl.DataFrame:
    keystore = keystore or open_keystore(settings, create_demo=True, roles=ALL_ROLES)
    return pl.from_arrow(read_staged(settings.staging, Path(path), keystore, columns=columns))


def staged_frames(settings, folder: Path, keystore=None) -> pl.DataFrame:
    """Every staged file under ``folder`` (a feed or table folder), concatenated."""
    keystore = keystore or open_keystore(settings, create_demo=True, roles=ALL_ROLES)
    return pl.concat([staged_frame(settings, p, keystore) for p in sorted(Path(folder).rglob("*.parquet"))])


def write_staged(settings, path: Path, frame: pl.DataFrame, keystore=None) -> None:
    """Write a staged file as ingest does: encrypted under its own key (created if new)."""
    import pyarrow.parquet as pq
    import pyarrow.parquet.encryption as pqe

    from pipeline.ingest.staging import staged_key_name

    keystore = keystore or open_keystore(settings, create_demo=True, roles=ALL_ROLES)
    key = keystore.data_key(staged_key_name(settings.staging, Path(path)), create=True)
    pq.write_table(frame.to_arrow(), path, encryption_properties=pqe.create_encryption_properties(key))


def staged_contents(root: Path, contracts_dir: Path) -> dict[str, list[dict]]:
    """Every staged file under ``root``, decrypted, as sorted rows by relative path (two runs
    staged the same rows when these are equal, whatever keys their files are under)."""
    from pipeline.settings import Settings

    settings = Settings(data_root=root, contracts_dir=contracts_dir)
    keystore = open_keystore(settings, create_demo=True, roles=ALL_ROLES)
    out = {}
    for path in sorted((root / "staging").rglob("*.parquet")):
        frame = staged_frame(settings, path, keystore)
        out[str(path.relative_to(root / "staging"))] = frame.sort(frame.columns).to_dicts() if frame.height else []
    return out


#: The lookup and opt-out lists that activity feeds need, then three activity feeds: about 80
#: deliveries of the small population, for flow tests whose property does not need every feed.
SOME_FEEDS = ("postcode_lookup", "ndoo", "type1_optout", "sus_apc", "ecds", "gp")


def feed_options(feeds=SOME_FEEDS) -> list[str]:
    """``--feed NAME`` for each feed, for ``safehaven ingest``."""
    return [arg for feed in feeds for arg in ("--feed", feed)]


def only_feeds(contents: dict[str, list[dict]], feeds=SOME_FEEDS) -> dict[str, list[dict]]:
    """The part of ``staged_contents`` that belongs to ``feeds``."""
    return {path: rows for path, rows in contents.items() if path.split("/")[0] in feeds}
