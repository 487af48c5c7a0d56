"""The zwfw Kubernetes target: Pulumi components for the intensive government cloud.

``program.main`` is the Pulumi program (``infra/__main__.py`` calls it); ``render`` runs it
under Pulumi's mocks and writes the objects it would create as YAML, for checks without a
cluster.
"""
