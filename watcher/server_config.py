"""[server]: where the web app, /healthz and /metrics listen, the public URL links are built on,
and which reverse proxies are believed. Part of the config (watcher.config re-exports it)."""

from __future__ import annotations

import ipaddress
import re

from pydantic import Field, field_validator, model_validator

from watcher.watch import Section


def parse_listen(value: str) -> tuple[str, int]:
    """'127.0.0.1:9464', '0.0.0.0:9464', '[::1]:9464' or ':9464' -> (host, port); ValueError if not."""
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"listen {value!r}: expected host:port, e.g. '127.0.0.1:9464'")
    host = host.removeprefix("[").removesuffix("]")
    if ":" in host and not value.strip().startswith("["):
        raise ValueError(f"listen {value!r}: write an IPv6 address in brackets, e.g. '[::1]:9464'")
    return host, int(port_text)


class ServerConfig(Section):
    """[server]: the optional /healthz and /metrics endpoints (and the web app beside them)."""

    listen: str | None = Field(default=None, description="host:port, e.g. 127.0.0.1:9464; unset: no server")
    public_url: str | None = Field(
        default=None, description="base of every link the app or a mail gives out; default http://<listen>"
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="addresses (or networks, comma-separated; '*' for any) of the reverse proxies whose "
        "X-Forwarded-For and X-Forwarded-Proto are believed: the client's address throttles sign-ins",
    )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"forwarded_allow_ips: {entry!r} is not an IP address or network (e.g. '172.18.0.0/16', or '*')"
                ) from None
        return ",".join(entries)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value.strip()):
            raise ValueError(f"public_url {value!r} must start with http:// or https:// and name a host")
        return value.strip().rstrip("/") if value is not None else None

    @model_validator(mode="after")
    def _default_public_url(self) -> ServerConfig:
        if self.public_url is None and self.listen is not None:
            object.__setattr__(self, "public_url", f"http://{self.listen.strip()}")
        return self

    @property
    def secure_cookies(self) -> bool:
        """Cookies are marked Secure when the app is reached over https."""
        return (self.public_url or "").startswith("https://")
