"""The report: tables and figures for the book, the checks the pages print, the profile runner and its
provenance page. It may use the study and the method library.
"""
