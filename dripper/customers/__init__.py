"""Customers: values, address rules, CSV import and export."""
