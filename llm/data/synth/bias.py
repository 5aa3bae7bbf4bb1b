"""Documentation bias: worse notes for one subgroup, so fairness checks have something to find.

``ATTR=VALUE:STRENGTH`` (e.g. ``race_ethnicity=Black:0.3``): each patient whose
``demographics[ATTR] == VALUE`` is, with probability ``STRENGTH``, documented
poorly: vague symptoms and exam instead of the evidence, the discriminating
labs not drawn, a limited chest film and a non-committal ECG read.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm.data.schema import AGE_BANDS
from llm.data.synth.demographics import LANGUAGES, PAYERS, RACE_ETHNICITY, SEXES
from llm.errors import BadInputError

BIAS_FORM = "ATTR=VALUE:STRENGTH (e.g. race_ethnicity=Black:0.3)"
BIAS_VALUES: dict[str, tuple[str, ...]] = {
    "sex": SEXES,
    "age_band": tuple(b for b in AGE_BANDS if b != "0-17"),
    "race_ethnicity": tuple(RACE_ETHNICITY),
    "payer": PAYERS,
    "language": LANGUAGES,
}


@dataclass(frozen=True)
class BiasSpec:
    """Degrade documentation for patients with ``demographics[attribute] == value``."""

    attribute: str
    value: str
    strength: float  # probability, per matching patient, of being degraded

    def __str__(self) -> str:
        return f"{self.attribute}={self.value}:{self.strength:g}"

    def matches(self, demographics: dict[str, str | int]) -> bool:
        """True when the patient belongs to the biased group."""
        return str(demographics.get(self.attribute)) == self.value


def parse_bias(text: str) -> BiasSpec:
    """Parse ``ATTR=VALUE:STRENGTH``.

    Args:
        text: the option value.

    Returns:
        The bias specification.

    Raises:
        BadInputError: malformed text, unknown attribute or value, or a strength
            outside [0, 1]; the message gives the expected form.
    """
    attribute, eq, rest = text.partition("=")
    value, colon, strength_text = rest.rpartition(":")
    attribute, value = attribute.strip(), value.strip()
    if not eq or not colon or not attribute or not value:
        raise BadInputError(f"--bias {text!r}: expected {BIAS_FORM}")
    if attribute not in BIAS_VALUES:
        raise BadInputError(
            f"--bias {text!r}: unknown attribute {attribute!r}; expected {BIAS_FORM} "
            f"with ATTR one of {', '.join(BIAS_VALUES)}"
        )
    if value not in BIAS_VALUES[attribute]:
        raise BadInputError(
            f"--bias {text!r}: {attribute} has no value {value!r} (known values: "
            f"{', '.join(BIAS_VALUES[attribute])}); expected {BIAS_FORM}"
        )
    try:
        strength = float(strength_text)
    except ValueError:
        raise BadInputError(
            f"--bias {text!r}: STRENGTH must be a number in [0, 1]; expected {BIAS_FORM}"
        ) from None
    if not 0.0 <= strength <= 1.0:
        raise BadInputError(
            f"--bias {text!r}: STRENGTH must be in [0, 1], got {strength:g}; expected {BIAS_FORM}"
        )
    return BiasSpec(attribute, value, strength)
