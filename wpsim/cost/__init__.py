"""Cost models: the time and bytes of one task on a machine.

:mod:`~wpsim.cost.cpu` is the CPU's model (caches, DRAM, dispatch, co-running) and
:mod:`~wpsim.cost.gpu` the GPU's (persistent kernels, per-step GEMMs). Cost models read machine
descriptions (:mod:`wpsim.machines`) and compiled plans (:mod:`wpsim.model.plan`); the simulators
(:mod:`wpsim.sim`) call them.
"""
