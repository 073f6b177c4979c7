"""The promotion protocol: explicit thresholds a candidate must meet before it becomes `champion`.

A model reaches the prediction service only through the registry alias `champion`
(`tracking.champion_uri()`). `evaluate_candidate` measures a candidate against a `Protocol`
(every threshold written down, with the reason it exists); `promote` logs the report to MLflow
in every case and registers the model and moves the alias only if every check passed, so a
rejected candidate leaves the current champion serving (Huyen, 2022, ch. 6).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from mlsys import evaluate, tracking
from mlsys.config import Settings, get_settings
from mlsys.logger import logger


#: Why each threshold exists: the failure it guards against that a single test AUC would not show.
REASONS = {
    "min_roc_auc": "the desk acts on the highest-ranked flights; below 0.70 too many of them arrive on time (our LightGBM: about 0.74)",
    "max_brier_ratio": "Brier at most this share of the zero rule's (always the training late rate): probabilities must carry information",
    "slice_min_n": "slices smaller than this are too noisy to judge",
    "slice_min_roc_auc": "no carrier, airport, month or hour may be served much worse than the rest; an average hides it",
    "max_invariance_delta": "flight and tail numbers are not causes of delay: shuffling them must not move any probability",
    "max_directional_violations": "more rain or worse visibility must never lower the probability, or the desk stops trusting it",
    "max_perturbation_delta": "weather noise of 0.1 std (another sensor, rounding) may move p by at most this on average",
    "max_ece": "the desk reads p as a rate; 0.05 fails every model trained here because December is later than any month learned from",
    "perturbation_scale": "size of that noise, in standard deviations of each weather column",
    "threshold": "operating threshold: p at or above it means 'act on this flight'",
    "behaviour_rows": "behaviour checks use a seeded sample this large: a 1-in-5,000 violation is found with probability 98 %",
    "seed": "seed of the sample, the shuffles and the noise",
}


@dataclass(frozen=True)
class Protocol:
    """Thresholds of the promotion protocol (course label, test split = November–December).

    Scores and slices use the whole test split; the behaviour checks (invariance, directional,
    perturbation) use a seeded sample of `behaviour_rows` test flights. `REASONS` says why each
    threshold exists; `protocol_table` shows both.
    """

    min_roc_auc: float = 0.70
    max_brier_ratio: float = 0.90
    slice_min_n: int = 500
    slice_min_roc_auc: float = 0.60
    max_invariance_delta: float = 1e-9
    max_directional_violations: int = 0
    max_perturbation_delta: float = 0.05
    max_ece: float = 0.08
    perturbation_scale: float = 0.1
    threshold: float = evaluate.OPERATING_THRESHOLD
    behaviour_rows: int | None = 20_000
    seed: int = 42


def protocol_table(protocol: Protocol) -> pd.DataFrame:
    """Every setting of `protocol` with its value and the reason it exists."""
    rows = [{"setting": k, "value": str(v), "why": REASONS.get(k, "")} for k, v in asdict(protocol).items()]
    return pd.DataFrame(rows).set_index("setting")


@dataclass(frozen=True)
class Check:
    """One line of the report: a measured value, its threshold and whether it passed."""

    name: str
    value: float
    op: str  # ">=" or "<="
    threshold: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        if not math.isfinite(self.value):
            return False
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold

    @property
    def reason(self) -> str:
        """Why it failed, in one line (empty when it passed)."""
        if self.passed:
            return ""
        text = f"{self.name} = {self.value:.4g}, required {self.op} {self.threshold:g}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass(frozen=True)
class Report:
    """The outcome of `evaluate_candidate`: every check, plus the protocol that set the thresholds."""

    checks: tuple[Check, ...]
    protocol: Protocol
    scores: dict[str, float] = field(default_factory=dict)
    #: the measurements behind the checks: `slices` and `directional` tables, `perturbation` and
    #: `invariance` dicts, so a notebook shows exactly the evidence the protocol judged
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.checks if not c.passed]

    def table(self) -> pd.DataFrame:
        """One row per check: value (rounded), threshold, passed, detail."""
        return pd.DataFrame(
            [
                {"check": c.name, "value": round(c.value, 4), "rule": f"{c.op} {c.threshold:g}", "passed": c.passed, "detail": c.detail}
                for c in self.checks
            ]
        )


@dataclass(frozen=True)
class Decision:
    """What `promote` did: registered version (None when rejected), the reasons, the run."""

    promoted: bool
    version: str | None
    reasons: list[str]
    run_id: str


def behaviour_sample(test: pd.DataFrame, protocol: Protocol) -> pd.DataFrame:
    """The test rows the behaviour checks run on (all of them when `behaviour_rows` is None or larger)."""
    test = test.reset_index(drop=True)
    if protocol.behaviour_rows is None or len(test) <= protocol.behaviour_rows:
        return test
    return test.sample(protocol.behaviour_rows, random_state=protocol.seed).sort_index()


def evaluate_candidate(model: Any, splits: dict[str, pd.DataFrame], protocol: Protocol | None = None) -> Report:
    """Run every check of `protocol` on the test split (zero rule from the train split's late rate)."""
    protocol = protocol or Protocol()
    test = splits["test"].reset_index(drop=True)
    y = test[evaluate.LABEL].to_numpy(dtype="float64")
    p = evaluate.predict(model, test)
    scores = evaluate.calibration_scores(y, p)
    zero_rule = evaluate.zero_rule_brier(y, float(splits["train"][evaluate.LABEL].mean()))

    slices = evaluate.slice_scores(test, p, min_n=protocol.slice_min_n, min_roc_auc=protocol.slice_min_roc_auc)
    judged = slices[slices["n"] >= protocol.slice_min_n]
    worst = judged.loc[judged["roc_auc"].idxmin()] if judged["roc_auc"].notna().any() else None
    flagged = ", ".join(f"{r.column}={r.value}" for r in slices[slices["flagged"]].itertuples())

    rows = behaviour_sample(test, protocol)
    before = p[rows.index.to_numpy()]
    invariance = evaluate.invariance_test(model, rows, seed=protocol.seed, before=before)
    directional = evaluate.directional_tests(model, rows, before=before)
    perturbation = evaluate.perturbation_test(
        model, rows, scale=protocol.perturbation_scale, threshold=protocol.threshold, seed=protocol.seed, before=before
    )
    checks = (
        Check("test_roc_auc", scores["roc_auc"], ">=", protocol.min_roc_auc),
        Check("brier_vs_zero_rule", scores["brier"] / zero_rule, "<=", protocol.max_brier_ratio, f"zero rule Brier {zero_rule:.4f}"),
        Check(
            "min_slice_roc_auc",
            float(worst["roc_auc"]) if worst is not None else float("nan"),
            ">=",
            protocol.slice_min_roc_auc,
            f"slices with n >= {protocol.slice_min_n}; worst {worst['column']}={worst['value']}" if worst is not None else "no slice",
        ),
        Check(
            "invariance_max_abs_delta",
            invariance["max_abs_delta"],
            "<=",
            protocol.max_invariance_delta,
            "shuffled " + ", ".join(evaluate.ID_COLUMNS),
        ),
        *(
            Check(
                f"directional_{name}_violations",
                float(row["violations"]),
                "<=",
                protocol.max_directional_violations,
                f"{int(row['violations'])} of {int(row['n'])} rows",
            )
            for name, row in directional.iterrows()
        ),
        Check("perturbation_mean_abs_delta", perturbation["mean_abs_delta"], "<=", protocol.max_perturbation_delta),
        Check("ece", scores["ece"], "<=", protocol.max_ece),
    )
    if flagged:
        logger.info("slices below the AUC floor: {}", flagged)
    extra = {
        **{f"test_{k}": v for k, v in scores.items()},
        "zero_rule_brier": zero_rule,
        **{f"perturbation_{k}": v for k, v in perturbation.items()},
        "invariance_mean_abs_delta": invariance["mean_abs_delta"],
    }
    evidence = {"slices": slices, "perturbation": perturbation, "invariance": invariance, "directional": directional}
    return Report(checks=checks, protocol=protocol, scores=extra, evidence=evidence)


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float | np.floating) and math.isfinite(v)}


def promote(
    model: Any, report: Report, input_example: pd.DataFrame, settings: Settings | None = None, name: str = "candidate"
) -> Decision:
    """Log `report` to MLflow; if every check passed, log, register and alias the model as champion.

    A rejected candidate gets a run with the report and its reasons, nothing in the registry, and
    the champion alias stays where it was.
    """
    settings = settings or get_settings()
    decision = "promoted" if report.passed else "rejected"
    with tracking.run(f"promote-{name}", settings=settings, stage="promotion") as active:
        mlflow.log_params({f"protocol.{k}": v for k, v in asdict(report.protocol).items()})
        mlflow.log_metrics(_finite({**{c.name: c.value for c in report.checks}, **report.scores}))
        mlflow.log_table(report.table(), artifact_file="promotion/report.json")
        mlflow.set_tags(
            {
                **{f"check.{c.name}": "passed" if c.passed else "failed" for c in report.checks},
                "promotion.decision": decision,
                "promotion.reasons": "; ".join(report.reasons)[:5000] or "all checks passed",
            }
        )
        version = None
        if report.passed:
            info = tracking.log_sklearn_model(model, input_example)
            version = tracking.register(info.model_uri, settings, alias=settings.champion_alias)
            mlflow.MlflowClient().set_model_version_tag(
                settings.registered_model_name, version, THRESHOLD_TAG, str(report.protocol.threshold)
            )
        else:
            mlflow.log_text("\n".join(report.reasons) + "\n", "promotion/reasons.txt")
            logger.info("{} rejected: {}", name, "; ".join(report.reasons))
        run_id = active.info.run_id
    return Decision(promoted=report.passed, version=version, reasons=report.reasons, run_id=run_id)


#: Registered versions carry the threshold they were promoted with, so the service decides as the
#: protocol did (read by `mlsys.serve`).
THRESHOLD_TAG = "decision_threshold"


def fit_champion(splits: dict[str, pd.DataFrame], seed: int = 42, method: str = "sigmoid", n_jobs: int = 1) -> Any:
    """The course's champion recipe (lesson 06): monotone LightGBM on train, calibrated on validation."""
    model = evaluate.fit(evaluate.constrained_lightgbm(seed=seed, n_jobs=n_jobs), splits["train"])
    return evaluate.calibrate(model, splits["valid"], method)


def champion_version(settings: Settings | None = None) -> str | None:
    """The registered version the champion alias points at, or None when there is no champion yet."""
    settings = settings or get_settings()
    tracking.setup_mlflow(settings)
    try:
        found = mlflow.MlflowClient().get_model_version_by_alias(settings.registered_model_name, settings.champion_alias)
    except MlflowException:
        return None
    return str(found.version)
