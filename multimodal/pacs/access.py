"""Who may talk to the listener: calling AE titles, source networks, and what each AE may do.

An entry of ``allowed_aets`` is ``AET`` (store studies and have their SRs sent to the results
destination) or ``AET:store`` (store only: the study is scored and its SR kept in the spool, not
sent). ``allowed_networks`` are CIDR blocks (``10.1.0.0/16``, ``127.0.0.1/32``) the peer's address
must fall in. Empty lists allow any AE / any address, which is only accepted on a loopback bind:
a listener reachable from the network must name who may call it. The called AE title must be the
listener's own. Every refusal comes back as a reason, which the listener logs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from multimodal.pacs import PacsError

STORE, RESULTS = "store", "results"
_PERMISSIONS = {"store": frozenset({STORE}), "results": frozenset({STORE, RESULTS})}


@dataclass(frozen=True)
class AccessPolicy:
    """The listener's allow-lists (see the module docstring)."""

    permissions: dict[str, frozenset[str]] = field(default_factory=dict)  # AE title -> {"store", "results"}
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, allowed_aets: Sequence[str] | None = None, allowed_networks: Sequence[str] | None = None
              ) -> AccessPolicy:
        permissions = {}
        for entry in allowed_aets or []:
            aet, _, level = entry.partition(":")
            if not aet.strip() or len(aet.strip()) > 16 or (level and level not in _PERMISSIONS):
                raise PacsError(f"allow {entry!r}: expected AET (store and results) or AET:store (store only)")
            permissions[aet.strip()] = _PERMISSIONS[level or "results"]
        networks = []
        for cidr in allowed_networks or []:
            try:
                networks.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError as err:
                raise PacsError(f"allow-network {cidr!r}: not a CIDR block ({err})") from err
        return cls(permissions, tuple(networks))

    @property
    def open(self) -> bool:
        """True when any AE from any address is accepted."""
        return not self.permissions and not self.networks

    def check_bind(self, host: str) -> None:
        """Refuse an open policy on anything but a loopback address."""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if self.open and not loopback:
            raise PacsError(f"listening on {host} needs an allow-list: give --allow AET and/or --allow-network CIDR")

    def refusal(self, calling_aet: str, called_aet: str, own_aet: str, address: str) -> str | None:
        """Why an association request is refused, or None when it is accepted."""
        if called_aet.strip() != own_aet.strip():
            return f"called AE title {called_aet.strip()!r} is not this listener's ({own_aet})"
        if self.permissions and calling_aet.strip() not in self.permissions:
            return f"calling AE title {calling_aet.strip()!r} is not allowed"
        if self.networks:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return f"source address {address!r} is not an IP address"
            if not any(ip in net for net in self.networks):
                return f"source address {address} is outside the allowed networks"
        return None

    def may_receive_results(self, calling_aet: str | None) -> bool:
        """Whether SRs of studies stored by ``calling_aet`` go to the results destination."""
        if not self.permissions:
            return True
        return RESULTS in self.permissions.get((calling_aet or "").strip(), frozenset())
