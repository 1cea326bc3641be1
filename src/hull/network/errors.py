"""The network layer's exceptions: each one readable line."""

from __future__ import annotations


class NetworkError(Exception):
    """Base of the network layer's errors."""


class CNIError(NetworkError):
    """A plugin's error: the CNI SPEC "Error" object (code, msg, details) it printed on stdout.

    ``plugin`` describes the plugin as libcni does (``type="bridge" name="net"``), ``op`` is
    libcni's word for the operation ("add", "delete", "check", "gc", "status", "version")
    and ``stderr`` whatever the plugin wrote there (plugins log to it; the SPEC's
    "unstructured output").
    """

    def __init__(
        self, code: int, msg: str, details: str = "", plugin: str = "", op: str = "", stderr: str = ""
    ) -> None:
        self.code = code
        self.msg = msg
        self.details = details
        self.plugin = plugin
        self.op = op
        self.stderr = stderr
        # libcni's wording: `plugin type="bridge" name="net" failed (add): msg; details`.
        text = f"{msg}; {details}" if details else msg
        if code:
            text = f"{text} (code {code})"
        if plugin:
            text = f"plugin {plugin} failed ({op or 'exec'}): {text}"
        super().__init__(text)


class ConfigError(NetworkError):
    """A bad network config file, naming the file and field."""
