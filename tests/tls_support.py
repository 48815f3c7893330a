"""A test certificate authority and a server certificate it signed, as PEM files."""

from __future__ import annotations

from pathlib import Path

import trustme


class Certificate:
    """A server certificate for 127.0.0.1 and the CA file that trusts it."""

    def __init__(self, directory: Path) -> None:
        authority = trustme.CA()
        self.server_pem = directory / "server.pem"
        self.ca_pem = directory / "ca.pem"
        authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
            str(self.server_pem)
        )
        authority.cert_pem.write_to_path(str(self.ca_pem))
