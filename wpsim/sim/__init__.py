"""The simulators and closed forms: a workload, a machine and a policy give a
:class:`~wpsim.result.Result`.

:mod:`~wpsim.sim.engine` is the discrete-event (simpy) engine of CPUs; :mod:`~wpsim.sim.closed_forms`
its closed forms (``predict``); :mod:`~wpsim.sim.accelerator` and :mod:`~wpsim.sim.gpu` model the
other machine kinds; :mod:`~wpsim.sim.runtime` adds a framework's software terms; and
:mod:`~wpsim.sim.evaluate` chooses by machine kind.
"""
