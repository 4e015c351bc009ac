"""The promotion gate: a candidate replaces the serving model only if it is not worse beyond a
stated tolerance, overall and for every class, on the same fixed base test set.

Tolerances: the base test set has 500 images a class, so one class's accuracy has a standard
error of about 1.3 points at 90%; overall (5,000 images) about 0.4 points. The gate allows
``OVERALL_TOLERANCE`` overall and ``PER_CLASS_TOLERANCE`` per class, so noise alone rarely
rejects an equal model while a real regression on any class is caught.
"""

from dataclasses import dataclass, field

OVERALL_TOLERANCE = 0.005  # accuracy points as a fraction: 0.5 points
PER_CLASS_TOLERANCE = 0.03  # 3 points for any one class


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)
    overall_delta: float = 0.0

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "overall_delta": self.overall_delta,
            "overall_tolerance": OVERALL_TOLERANCE,
            "per_class_tolerance": PER_CLASS_TOLERANCE,
        }


def check(
    candidate: dict,
    current: dict,
    overall_tolerance: float = OVERALL_TOLERANCE,
    per_class_tolerance: float = PER_CLASS_TOLERANCE,
) -> GateDecision:
    """Compare two models' metrics (``accuracy``, ``per_class``, ``test_data``) on the same test set."""
    reasons = []
    if candidate.get("test_data", {}).get("sha256") != current.get("test_data", {}).get("sha256"):
        reasons.append("the candidate was evaluated on a different test set than the current model")
    delta = candidate["accuracy"] - current["accuracy"]
    if delta < -overall_tolerance:
        reasons.append(
            f"overall accuracy {candidate['accuracy']:.4f} is {-delta * 100:.2f} points below the "
            f"current {current['accuracy']:.4f} (tolerance {overall_tolerance * 100:.1f})"
        )
    for label, accuracy in current["per_class"].items():
        drop = accuracy - candidate["per_class"].get(label, 0.0)
        if drop > per_class_tolerance:
            reasons.append(
                f"{label} accuracy {candidate['per_class'].get(label, 0.0):.3f} is {drop * 100:.1f} "
                f"points below the current {accuracy:.3f} (tolerance {per_class_tolerance * 100:.0f})"
            )
    return GateDecision(passed=not reasons, reasons=tuple(reasons), overall_delta=float(delta))
