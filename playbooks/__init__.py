"""Shipped collection scenarios (YAML), one file per playbook."""
