"""TLS: the server's SSL context from the settings, the handshake of each connection, and
the ASGI ``tls`` scope extension."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable
from typing import Any

from hasten.config import Config
from hasten.logs import error_logger

# The ASGI tls extension's version numbers (RFC 8446 §4.2.1).
TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)
# RFC 4514 §2.3: attribute types by their short names, as the ASGI tls extension asks.
_RDN_SHORT_NAMES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_RDN_SPECIAL = re.compile(r'([,+"\\<>;=])')


class ServerSSLContext(ssl.SSLContext):
    """An SSL context that also remembers what the ``tls`` scope extension reports."""

    server_cert_pem: str | None
    cipher_suite_ids: dict[str, int]


def alpn_protocols(http_mode: str) -> list[str]:
    """The ALPN protocols offered for ``--http`` (RFC 7301), most preferred first."""
    return {"auto": ["h2", "http/1.1"], "h1": ["http/1.1"], "h2": ["h2"]}[http_mode]


def create_ssl_context(config: Config) -> ServerSSLContext | None:
    """The server's SSL context, or ``None`` when no certificate is configured.

    Raises ``OSError``/``ssl.SSLError`` for unreadable or mismatched certificate files.
    """
    if config.ssl_certfile is None:
        return None
    context = ServerSSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password)
    context.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
    if config.ssl_ca_certs is not None:
        context.load_verify_locations(config.ssl_ca_certs)
        if config.ssl_cert_reqs == ssl.CERT_NONE:
            # Not turned on silently: a certificate request makes browsers ask their user.
            error_logger.warning(
                "ssl_ca_certs is set but ssl_cert_reqs is 0: no client certificate is asked "
                "for, so none is verified; set ssl_cert_reqs to 1 (optional) or 2 (required)"
            )
    if config.ssl_ciphers is not None:
        context.set_ciphers(config.ssl_ciphers)
    context.set_alpn_protocols(alpn_protocols(config.http))
    context.sslobject_class = HandshakeLoggingSSLObject
    # RFC 9113 §9.2.2: HTTP/2 over TLS 1.2 forbids renegotiation.
    context.options |= ssl.OP_NO_RENEGOTIATION
    with open(config.ssl_certfile, encoding="ascii", errors="replace") as certfile:
        match = _PEM_CERTIFICATE.search(certfile.read())
    context.server_cert_pem = match.group() + "\n" if match else None
    # OpenSSL names the negotiated cipher; the ASGI extension wants its IANA number, which
    # is the low 16 bits of OpenSSL's cipher id.
    context.cipher_suite_ids = {
        cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()
    }
    return context


def tls_scope_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    """The ASGI ``tls`` extension for one TLS connection (ASGI TLS extension spec)."""
    context = ssl_object.context
    cipher = ssl_object.cipher()
    version = ssl_object.version()
    peer_der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(peer_der)] if peer_der else []
    get_chain = getattr(ssl_object, "get_verified_chain", None)  # Python >= 3.13
    if peer_der and get_chain is not None:
        chain = [ssl.DER_cert_to_PEM_cert(der) for der in get_chain()]
    peer = ssl_object.getpeercert() if peer_der else None
    return {
        "server_cert": getattr(context, "server_cert_pem", None),
        "client_cert_chain": chain,
        "client_cert_name": rfc4514_name(peer["subject"]) if peer else None,
        # A client certificate that fails verification fails the handshake: any certificate
        # an app sees has been verified.
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(version or ""),
        "cipher_suite": getattr(context, "cipher_suite_ids", {}).get(cipher[0]) if cipher else None,
    }


def rfc4514_name(subject: Any) -> str:
    """A certificate subject as an RFC 4514 string: last RDN first, values escaped."""
    rdns = []
    for rdn in reversed(subject):
        parts = []
        for attribute, value in rdn:
            name = _RDN_SHORT_NAMES.get(attribute, attribute)
            escaped = _RDN_SPECIAL.sub(r"\\\1", value)
            if escaped.startswith((" ", "#")):
                escaped = "\\" + escaped
            if escaped.endswith(" "):
                escaped = escaped[:-1] + "\\ "
            parts.append(f"{name}={escaped}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


class HandshakeLoggingSSLObject(ssl.SSLObject):
    """Logs a failed TLS handshake at debug level: port scanners and plain-HTTP clients are
    routine, and asyncio would otherwise say nothing at all."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            error_logger.debug("TLS handshake failed: %s", exc)
            raise


class ALPNDispatch(asyncio.Protocol):
    """The protocol a TLS connection starts with: once the handshake is done it hands the
    connection to the protocol for the ALPN protocol negotiated (RFC 7301)."""

    __slots__ = ("choose_protocol",)

    def __init__(self, choose_protocol: Callable[[str | None], asyncio.Protocol]) -> None:
        self.choose_protocol = choose_protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        protocol = self.choose_protocol(alpn)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
