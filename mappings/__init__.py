"""Declarative mappings, one YAML file per connector: source fields to the unified schema."""
