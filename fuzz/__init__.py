"""Fuzzing: atheris harnesses (run.py) and the seed corpus shared with the hypothesis tests."""
