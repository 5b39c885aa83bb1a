"""Recipes for a host application (TAI): CAIO beside it, or embedded in it. Run by the tests."""
