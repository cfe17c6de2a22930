"""The detection benchmarks' reports: pooled false-alarm rate over pre-change windows, tail ratios."""
from __future__ import annotations

from bench import calibration_tail, detection


def test_detection_report_pools_false_alarms_over_pre_change_windows() -> None:
    row = {"calibrated+fdr": {"false_alarms_per_1000_windows": 10.0, "windows_before_change": 200,
                              "false_alarm_windows": 2, "delay_events": None},
           "fixed_thresholds": {"false_alarms_per_1000_windows": 0.0, "windows_before_change": 200,
                                "false_alarm_windows": 0, "delay_events": None}}
    other = {"calibrated+fdr": {"false_alarms_per_1000_windows": 30.0, "windows_before_change": 100,
                                "false_alarm_windows": 3, "delay_events": 1000, "delay_windows": 1.0}}
    text = detection.to_markdown({"n_features": 50, "window_events": 1000, "events": 1, "change_at": 0,
                                  "scenarios": {"no_drift": row, "abrupt": other}})
    assert "- calibrated+fdr: 5 of 300 windows (1.67%)" in text
    assert "- fixed_thresholds: 0 of 200 windows (0.00%)" in text


def test_calibration_tail_report_states_the_bh_window_rate() -> None:
    text = calibration_tail.to_markdown({"windows": 400, "draws": 300, "seed": 1, "keys_per_window": 500,
                                         "bh_windows_with_any_rejection": 3, "bh_window_false_alarm_rate": 0.0075,
                                         "ratio_to_nominal": {"psi": {"0.01": 1.0, "0.001": 0.9, "0.0003": 1.1,
                                                                      "0.0001": 0.5}}})
    assert "| psi | 1.00 | 0.90 | 1.10 | 0.50 |" in text
    assert "3 of 400 windows with any rejection (0.75%; target <= 1%)" in text
