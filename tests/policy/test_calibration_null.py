"""The calibrated null law: its tail, its thresholds against independent references, its size rescaling."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from helpers import START, monitor_config
from scipy import stats as sps

from stream_monitor.config import config_from_dict
from stream_monitor.contracts.events import Prediction, PredictionEvent
from stream_monitor.engine import Engine
from stream_monitor.policy.calibration import calibrate_model
from stream_monitor.policy.null_model import fit_null_model
from stream_monitor.policy.rules import empirical_p_value, thresholds_for


@pytest.mark.parametrize("shape", [0.5, 4.5, 11.0])
def test_null_model_matches_the_law_in_the_body_and_is_conservative_in_the_tail(shape: float) -> None:
    """Pooled draws of a gamma law (a PSI-like null is gamma with shape (bins-1)/2): the survival function
    follows scipy's to 10% relative while it has draws behind it, and beyond them the exponential tail
    never reports a p-value below the true one (down to 1e-6)."""
    rng = np.random.default_rng(int(shape * 10))
    x = rng.gamma(shape, 1.0 / shape, size=15_000)
    model = fit_null_model(x, keys=50)
    law = sps.gamma(shape, scale=1.0 / shape)
    for rate in (0.3, 0.1, 0.03, 0.01):
        z = law.isf(rate)
        assert model.survival(z) == pytest.approx(rate, rel=0.1)
        assert model.quantile(rate) == pytest.approx(z, rel=0.05)
    for rate in (1e-3, 1e-4, 1e-5, 1e-6):
        assert model.survival(law.isf(rate)) >= 0.9 * rate
    assert model.survival(model.quantile(1e-4)) == pytest.approx(1e-4, rel=1e-6)


def _gaussian_events(n_features: int, n: int, seed: int) -> list[PredictionEvent]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    pred = Prediction.model_construct(score=0.5, class_=None, value=None)
    return [PredictionEvent.model_construct(
        event_id=str(i), model_id="credit-risk", model_version="v1", timestamp=START + timedelta(seconds=i / 100),
        features={f"f{j}": float(x[i, j]) for j in range(n_features)}, prediction=pred, latency_ms=None,
        slice=None, llm=None) for i in range(n)]


@pytest.fixture(scope="module")
def calibrated() -> tuple[object, int]:
    k, m = 8, 20_000
    cfg = monitor_config()
    cfg["models"][0] = {"model_id": "credit-risk", "features": [{"name": f"f{j}"} for j in range(k)],
                        "monitor_prediction": False, "window": {"size_seconds": 10},
                        "rules": [{"id": "psi", "metric": "psi", "thresholds": {"warning": 0.1, "critical": 0.2}},
                                  {"id": "ks", "metric": "ks_statistic", "thresholds": {"warning": 0.1}}]}
    config = config_from_dict(cfg)
    reference = Engine(config).build_reference("credit-risk", _gaussian_events(k, m, seed=1), source="ref")
    return calibrate_model(config.models[0], reference, window_events=1000, draws=200, seed=3), m


def test_calibrated_thresholds_agree_with_the_asymptotic_laws(calibrated: tuple[object, int]) -> None:
    """Independent references at n = 1,000 against m = 20,000: PSI over B equal-mass bins is
    chi-square(B-1) x (1/n + 1/m) and KS is Kolmogorov with n_eff = nm/(n+m). The calibrated 1% thresholds
    (bootstrap on KLL sketches, pooled shape) land within 12% of both, for every feature."""
    model, m = calibrated
    psi_rule, ks_rule = model.rules  # type: ignore[attr-defined]
    n = 1000
    for feature, entry in psi_rule.calibration["per_feature"].items():
        assert entry["null_model"].startswith("psi:numeric")
        b = int(entry["null_model"].split("bins=")[1].split(":")[0])
        expected = sps.chi2.isf(0.01, b - 1) * (1 / n + 1 / m)
        assert entry["thresholds"]["warning"] == pytest.approx(expected, rel=0.12), feature
    n_eff = n * m / (n + m)
    expected_ks = sps.kstwo.isf(0.01, round(n_eff))
    for feature, entry in ks_rule.calibration["per_feature"].items():
        assert entry["thresholds"]["warning"] == pytest.approx(expected_ks, rel=0.12), feature


def test_thresholds_and_p_values_follow_the_window_size(calibrated: tuple[object, int]) -> None:
    """A window of 4,000 events runs PSI about 4x smaller than one of 1,000 (against a large reference):
    its thresholds scale down by (1/4000 + 1/m) / (1/1000 + 1/m), KS's by the square root, and the same
    statistic is far less likely under no drift at the larger window."""
    model, m = calibrated
    psi_rule, ks_rule = model.rules  # type: ignore[attr-defined]
    factor = (1 / 4000 + 1 / m) / (1 / 1000 + 1 / m)
    at_1000 = thresholds_for(psi_rule, "f0", None, 1000)
    at_4000 = thresholds_for(psi_rule, "f0", None, 4000)
    assert at_4000["warning"] == pytest.approx(at_1000["warning"] * factor, rel=1e-9)
    ks_1000, ks_4000 = thresholds_for(ks_rule, "f0", None, 1000), thresholds_for(ks_rule, "f0", None, 4000)
    assert ks_4000["warning"] == pytest.approx(ks_1000["warning"] * factor**0.5, rel=1e-9)
    value = at_1000["warning"]
    p_1000 = empirical_p_value(psi_rule, "f0", value, None, 1000)
    p_4000 = empirical_p_value(psi_rule, "f0", value, None, 4000)
    assert p_1000 == pytest.approx(0.01, rel=1e-4)  # the stored law is rounded to 6 digits
    assert p_4000 is not None and p_4000 < 1e-6
