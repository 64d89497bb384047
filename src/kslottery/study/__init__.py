"""The study: its protocol, arms, comparisons and chapters' experiments, built on the method library.
It imports nothing from the report.
"""
