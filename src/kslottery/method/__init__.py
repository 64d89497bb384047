"""The method library: models, data, prompts, generation, scoring, tuning, the KS test, tickets,
partial transfer, controls, the certificate and hash-named runs. It imports nothing from the study or
the report.
"""
