"""The workload and its graphs: a workload (cell, layers, sizes) becomes a task graph
(:mod:`~wpsim.model.graph`), compiled into a plan the engines run (:mod:`~wpsim.model.plan`);
:mod:`~wpsim.model.analysis` measures a graph's work, span and parallelism, and
:mod:`~wpsim.model.export` writes it (GraphML, DOT, a picture).

The bottom of wpsim's layers above its errors, configuration and outputs: nothing here knows
machines, costs, policies or simulators.
"""
