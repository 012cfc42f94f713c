"""HiGHS solves shared by the joint engine's checks and the audit's LPs."""

from __future__ import annotations

import highspy

ANSWERS = (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kUnbounded,
           highspy.HighsModelStatus.kInfeasible)
WARM = 4  # primal simplex: a cost change keeps the last basis primal feasible, so it goes on from there
COLD = 1  # dual simplex


def warm_lp() -> highspy.Highs:
    """A quiet HiGHS instance set up for LPs solved one after another with a changed objective."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("simplex_strategy", WARM)
    return h


def run_warm(h: highspy.Highs) -> highspy.HighsModelStatus:
    """Solve ``h`` from its last basis; when the primal simplex stops without an answer (HiGHS says
    "Unknown" on some small degenerate LPs: found by the joint engine's line-cut property test),
    solve it again from scratch by the dual simplex. The model status."""
    h.run()
    status = h.getModelStatus()
    if status in ANSWERS:
        return status
    h.clearSolver()
    h.setOptionValue("simplex_strategy", COLD)
    try:
        h.run()
    finally:
        h.setOptionValue("simplex_strategy", WARM)
    return h.getModelStatus()
