"""Clinical evaluation: per-class operating metrics, curves, calibration, subgroups, paired tests."""
