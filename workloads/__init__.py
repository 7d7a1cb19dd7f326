"""Workload descriptions shipped with wpsim (package data: read them with wpsim.resources)."""
