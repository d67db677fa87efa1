"""What workflows, activities and the API exchange: inputs, results, error types, ids.

Depends on `domain` only, so both sides of every boundary import the same definitions.
"""
