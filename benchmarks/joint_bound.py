"""How few cells any pattern can hide on a benchmark table: the joint engine run for fewest cells
(every cell weighs 1), with a hidden cell free to move as far as the table allows (the audit's own
attacker, so the bound holds for the audit's rule), for a long time. Prints the LP and MIP lower
bounds it reached, as cells and as a share of the table, and the best protecting pattern if one
was proved.

    PYTHONPATH=. .venv/bin/python -m benchmarks.joint_bound southend 1200 [--sliding] [--model] [--mip]

``--model`` keeps the engine's own capacities (a hidden cell moves by at most the target's level),
so the bound is on what the engine itself can find, which is at least the audit's.

The bound is the LP relaxation's (90% of the time cuts it) unless ``--mip``: then 15% cuts the
LP and the rest solves the master MIP round after round (each round's pattern checked, its
failures cut, no dives), each round proved optimal for the cuts so far, so its cost is a lower
bound on every protecting pattern and it rises round by round (slowly: each round takes longer).

Not part of ``make bench``: it is a question asked once per rule, not a speed to track."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scale", choices=["small", "southend"])
    parser.add_argument("seconds", type=float)
    parser.add_argument("--sliding", action="store_true", help="sliding protection (width only)")
    parser.add_argument("--model", action="store_true", help="the engine's capacities, not the audit's")
    parser.add_argument("--mip", action="store_true", help="the master MIP's proved bound, not the LP's")
    args = parser.parse_args()

    from benchmarks.disclosure_tables import SOUTHEND, ward_table
    from pipeline.disclosure import PROFILES, apply_primary, joint
    from pipeline.disclosure.release import ABSENT, PRIMARY
    from pipeline.disclosure.secondary import protect

    if not args.model:
        joint.CAPACITY = 1e3  # as far as the table allows
    joint.LP_SHARE = 0.15 if args.mip else 0.9
    joint.DIVES = not args.mip
    table = ward_table(**(SOUTHEND | ({"n_wards": 1} if args.scale == "small" else {})))
    profile = dataclasses.replace(PROFILES["safehaven"], sliding=args.sliding)
    cube = protect(apply_primary(table, profile), "cube")
    release = apply_primary(table, profile)
    present = release.status != ABSENT
    primaries = int((release.status == PRIMARY).sum())
    started = time.perf_counter()
    found = joint.protect_joint(release, start=cube.hidden.copy(), time_limit=args.seconds,
                                weights=np.ones(present.size))
    result = found[2] if found else None
    bound = primaries + (result.bound if result else 0.0)
    out = {"table": args.scale, "sliding": args.sliding, "model": args.model, "mip": args.mip,
           "cells": int(present.sum()),
           "primaries": primaries,
           "cube_hidden": int((cube.hidden & present).sum()), "seconds": round(time.perf_counter() - started, 1),
           "lower_bound_cells": int(np.ceil(bound - 1e-6)),
           "lower_bound_share": round(float(np.ceil(bound - 1e-6) / present.sum()), 4),
           "search": result.as_dict() if result else None}
    if found and result.protected:
        out["best_hidden"] = int((found[0] & present).sum())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
