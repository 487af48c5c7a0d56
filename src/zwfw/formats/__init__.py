"""Wire formats several parties must agree on, byte for byte: the provinces, the national hub,
the conformance suites that check them and the harness self-test. Nothing here depends on the
services; the services' own machinery around a format (storage, HTTP answers) stays in the
service kit.

- ``channel``: the signed province↔hub channel (message signing and verification, content
  digest, key ids, TLS certificate fingerprints).
"""
