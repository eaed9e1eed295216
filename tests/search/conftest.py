"""The search tests import their small cases from search_cases.py."""
