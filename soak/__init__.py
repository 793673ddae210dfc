"""Crash-and-restart soak: a hub and members as real processes, load, SIGKILLs, a simulated week.

``python -m soak`` runs the full soak (``make soak``); ``soak.driver.run_soak`` with a
smaller ``SoakPlan`` is the short version in the test suite.
"""
