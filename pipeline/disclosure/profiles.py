"""Rule profiles: named, versioned sets of primary rules and what the published symbols mean.

- ``nhs-hes-2018``: NHS Digital's HES/ECDS method since September 2018: counts 1-7 shown as
  ``*``, every other count rounded to the nearest 5, 0 stays 0; no secondary suppression, so
  ``*`` itself tells an attacker "1 to 7".
- ``opensafely``: counts of 7 or fewer redacted (zero included), the rest rounded to 5.
- ``acro``: ACRO's defaults: counts below 10 (zeros included) unsafe, (2, 90%) dominance and
  p 10% for magnitudes; no rounding. ACRO itself has no secondary suppression; here the profile
  supplies the primary rules and our secondary suppression and audit do the rest.
- ``safehaven``: our default for commissioning outputs: counts 1-7 unsafe, secondary
  suppression, exact values published, every hidden cell's deducible interval at least 8 wide.

``protection_width`` is the narrowest interval the audit accepts for a hidden cell; exact
recovery (width 0) always fails. ``sliding`` says whether a primary's interval may lie anywhere
around its count (only its width counts) or must reach below it as far as the count allows. A custom profile comes from an output contract's parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["PROFILES", "Profile", "get_profile", "profile_from_parameters"]


@dataclass(frozen=True)
class Profile:
    name: str
    version: str
    description: str
    threshold: int  # counts 1..threshold are unsafe
    round_base: int | None = None  # published counts rounded to this base
    protect_zeros: bool = False  # a zero is unsafe too (group attribute disclosure)
    secondary: bool = True  # complementary suppression is applied; "*" then means "some count"
    protection_width: int = 1  # narrowest acceptable deducible interval of a hidden cell
    # How a primary's width may be split. False (split): it must move down by min(count, width/2)
    # and up by the rest, so an attacker cannot tell a small count from zero. True (sliding, as
    # tau-Argus's sliding protection level): the interval need only be ``protection_width`` wide,
    # wherever it lies, so it may start at the count itself ("at least 3").
    sliding: bool = False
    dominance: tuple[int, float] | None = None  # (n, k percent) for magnitude tables
    p_percent: float | None = None
    symbol: str = "*"

    @property
    def hidden_range(self) -> tuple[int, float]:
        """What the hidden symbol tells an attacker about the count behind it."""
        if self.secondary:
            return 0, float("inf")
        return (0 if self.protect_zeros else 1), self.threshold

    def parameters(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "nhs-hes-2018": Profile(
        "nhs-hes-2018", "2018-09", "NHS Digital HES/ECDS: 1-7 -> *, others to the nearest 5, 0 stays 0",
        threshold=7, round_base=5, secondary=False, protection_width=1),
    "opensafely": Profile(
        "opensafely", "2023", "OpenSAFELY: 7 or fewer (zero included) redacted, others to the nearest 5",
        threshold=7, round_base=5, protect_zeros=True, secondary=False, protection_width=1),
    "acro": Profile(
        "acro", "1.0.1", "ACRO defaults: below 10 (zeros included) unsafe, (2, 90%) dominance, p 10%",
        threshold=9, protect_zeros=True, secondary=True, protection_width=10, dominance=(2, 90.0), p_percent=10.0),
    "safehaven": Profile(
        "safehaven", "1", "Counts 1-7 unsafe; secondary suppression; hidden intervals at least 8 wide",
        threshold=7, secondary=True, protection_width=8),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown rule profile {name!r}: choose one of {', '.join(PROFILES)}") from None


def profile_from_parameters(parameters: dict) -> Profile:
    """A profile from ``Profile.parameters()`` read back from JSON (a record, a ledger entry)."""
    params = dict(parameters)
    params["dominance"] = tuple(params["dominance"]) if params.get("dominance") else None
    return Profile(**params)
