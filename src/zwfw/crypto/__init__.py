"""国密 cryptography: SM2 signatures (`sm2`), SM3 (`hashing`), SM4-GCM (`sm4`), SM2 X.509 and a
small CA (`x509`), GB/T 38540 seals (`ses`) and encrypted private-key storage (`keystore`)."""
