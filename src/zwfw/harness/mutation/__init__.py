"""Mutation testing of the reference services against the conformance suites.

A certificate is worth the defects it would catch. This package measures that: cosmic-ray
makes source mutants of the services' request-handling code; each runs as the province's
service of a reference platform while ``zwfw certify`` runs the suites that reach it; a mutant
the certification does not fail is a defect the harness would certify.

It lives in the harness because it drives the harness (``zwfw certify``, the pytest plugin) and
the reference platform, and ships with the ``zwfw`` command (``zwfw mutation``) and as
cosmic-ray's ``zwfw-reference`` distributor (entry point), so that ``cosmic-ray exec`` on the
configuration in ``conformance/mutation/`` runs the same way.

Modules: `config` (the cosmic-ray configuration and zwfw's sections), `mutants` (stable mutant
identity), `sampling`, `session` (cosmic-ray's session and filters), `attribution` and
`tracing`/`launcher` (which tests reach which lines), `worker` (one source copy and platform),
`distributor` (workers, batches, clean runs), `equivalents` (the reviewed file), `report`
(scores, survivors, the generated table) and `cli`.
"""
