"""pytest-bdd step definitions: one module per plane; bodies only call the harness."""
