"""Measurements of this computer: calibration (:mod:`~wpsim.measure.calibrate`,
:mod:`~wpsim.measure.calibrate.runtime`) writes machine and runtime files; validation
(:mod:`~wpsim.measure.validate`) runs the real executor beside the simulator, and
:mod:`~wpsim.measure.measured` reads measurements made elsewhere.

Above both the simulators and the numpy kernels (it runs them side by side).
"""
