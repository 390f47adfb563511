"""The gateway's security functions for the WAN: a test SM-PKI (testpki), the gateway's key
store (keystore), CMS signing and encryption (cms) and the signature on derived values
(valuesig). docs/pki-and-cms.md describes the files, certificate profiles and byte formats."""
