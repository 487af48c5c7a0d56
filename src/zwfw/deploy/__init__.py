"""Steps that complete a host deployment (``playbooks/``) after its services run: the system
client shared by the hub at every provincial IdP, and the material to certify a province
(test accounts and clients, issuer seals, seeded licences and catalog item, target profile and
credentials). See ``zwfw.deploy.certification``."""
