"""Compare a re-executed notebook's text outputs with the committed ones, tolerating BLAS noise.

Committed outputs are checked by nbval on every `make test`, on whatever CPU the student has.
OpenBLAS picks kernels by CPU (and macOS uses Accelerate), so an lbfgs fit can land on slightly
different floats: a committed 0.7128 comes back as 0.7126, a mean of 0.217 as 0.216 (one unit in
the last printed digit, because the unrounded values sit either side of a rounding boundary).

`outputs_match` splits both texts into numbers and the text between them. The text must be the
same (runs of spaces and tabs may differ: a table's column width follows its widest number), the
numbers must be as many, and each pair must agree:

* integers (`336,776`, `42`: no decimal point) exactly: row counts, versions and counts of
  anything are never noise;
* decimals within `max(one unit in the last printed digit, RTOL x the larger value)`; the
  one-unit allowance only applies to numbers printed with at least `MIN_NOISY_DECIMALS` decimals,
  so a metric that moves in its second decimal (0.71 -> 0.72, or 0.712 -> 0.722) still fails.

`True`/`False`, names, table headers and the number of rows are text, so a changed decision or a
table that gains a row fails as before.
"""

from __future__ import annotations

import re

#: Relative tolerance for decimals: 66449.180 vs 66468.852 (a cost summed over 55k flights) is 3e-4.
RTOL = 1e-3
#: Numbers printed with fewer decimals than this get no last-digit allowance.
MIN_NOISY_DECIMALS = 3

_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])")
_BLANKS = re.compile(r"[ \t]+")


def split_numbers(text: str) -> tuple[list[str], list[str]]:
    """The text between numbers (blank runs collapsed) and the numbers themselves, in order."""
    numbers = _NUMBER.findall(text)
    between = [_BLANKS.sub(" ", part) for part in _NUMBER.split(text)]
    return between, numbers


def _decimals(token: str) -> int:
    mantissa = re.split("[eE]", token)[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def _is_integer(token: str) -> bool:
    return "." not in token and "e" not in token.lower()


def numbers_match(committed: str, rerun: str, rtol: float = RTOL) -> bool:
    """Whether two printed numbers are the same result (see the module docstring)."""
    if _is_integer(committed) or _is_integer(rerun):
        return committed.replace(",", "") == rerun.replace(",", "")
    a, b = float(committed.replace(",", "")), float(rerun.replace(",", ""))
    decimals = max(_decimals(committed), _decimals(rerun))
    last_digit = 10.0**-decimals if decimals >= MIN_NOISY_DECIMALS and "e" not in (committed + rerun).lower() else 0.0
    # the 1e-12 absorbs the float error of the decimal strings themselves (0.217 - 0.216 > 0.001)
    return abs(a - b) <= max(last_digit, rtol * max(abs(a), abs(b))) + 1e-12


def outputs_match(committed: str, rerun: str, rtol: float = RTOL) -> bool:
    """Whether a re-executed output shows the same results as the committed one."""
    if committed == rerun:
        return True
    text_a, numbers_a = split_numbers(committed)
    text_b, numbers_b = split_numbers(rerun)
    return text_a == text_b and len(numbers_a) == len(numbers_b) and all(
        numbers_match(a, b, rtol) for a, b in zip(numbers_a, numbers_b, strict=True)
    )


class ToleratedText(str):
    """A string whose `==` is `outputs_match`: what nbval's comparison of two outputs calls."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and outputs_match(str(self), str(other))

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__


def install_nbval_tolerance() -> None:
    """Make nbval compare outputs with `outputs_match` (called from the root conftest).

    nbval compares `sanitize(reference) != sanitize(rerun)`; returning `ToleratedText` from its
    sanitizer keeps every other part of nbval (which outputs exist, how many, the sanitize rules,
    the failure report) as it is.
    """
    from nbval.plugin import IPyNbCell

    if getattr(IPyNbCell.sanitize, "tolerant", False):
        return
    exact = IPyNbCell.sanitize

    def sanitize(self: IPyNbCell, s: object) -> object:
        out = exact(self, s)
        return ToleratedText(out) if isinstance(out, str) else out

    sanitize.tolerant = True  # type: ignore[attr-defined]
    IPyNbCell.sanitize = sanitize


def pytest_configure(config: object) -> None:
    """Lets `pytest -p mlsys.nbcompare --nbval ...` use the tolerance outside this repository's conftest."""
    install_nbval_tolerance()
