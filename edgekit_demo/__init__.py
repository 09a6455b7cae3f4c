"""Demo content for edgekit: models built in code (zoo, zoo_text), the built-in datasets, and `edgekit demo`.

A package of its own: edgekit's core never imports it. It plugs in through entry points
(`edgekit.datasets`, `edgekit.commands`).
"""
