"""Tests only: Kaggle's host names lead to the fake server on loopback, and nothing leaves the machine.

The kaggle client talks to its production endpoint, pointed at
``http://api.kaggle.com:PORT`` (the URL shape of production:
``/v1/<service>/<method>``); downloads and uploads go to
``http://storage.googleapis.com:PORT``.  `resolver` makes those two names
resolve to 127.0.0.1 and refuses every other name that is not loopback, so a
test that goes astray fails instead of reaching the internet.

Used in-process by the `fake_kaggle` fixture (with monkeypatch) and, for
``python -m pipeline`` subprocesses, by ``sitecustomize.py`` beside this file
(this directory on PYTHONPATH, the port in ``DIGITS_FAKE_KAGGLE_PORT``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

API_HOST = "api.kaggle.com"
STORAGE_HOST = "storage.googleapis.com"
FAKE_HOSTS = (API_HOST, STORAGE_HOST)
PORT_VARIABLE = "DIGITS_FAKE_KAGGLE_PORT"
LOOPBACK = "127.0.0.1"


def api_endpoint(port: int) -> str:
    """What kagglesdk's PROD endpoint becomes (it is https://api.kaggle.com in production)."""
    return f"http://{API_HOST}:{port}"


def storage_url(port: int) -> str:
    return f"http://{STORAGE_HOST}:{port}"


def is_loopback(host: str) -> bool:
    if host.rstrip(".").lower() in ("localhost", "ip6-localhost", "ip6-loopback"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolver(real: Callable[..., Any]) -> Callable[..., Any]:
    """A socket.getaddrinfo that maps FAKE_HOSTS to 127.0.0.1, passes loopback through, refuses the rest."""

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:  # noqa: A002
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or is_loopback(name):
            return real(host, port, family, type, proto, flags)
        if name.rstrip(".").lower() in FAKE_HOSTS:
            return real(LOOPBACK, port, socket.AF_INET, type, proto, flags)
        raise socket.gaierror(
            socket.EAI_NONAME, f"the tests resolve only {', '.join(FAKE_HOSTS)} and loopback, not {name!r}"
        )

    getaddrinfo.digits_loopback = True  # type: ignore[attr-defined]
    return getaddrinfo


def install(port: int) -> None:
    """For a whole process: the resolver, and kagglesdk's PROD endpoint on `port` once kagglesdk is imported."""
    import sys

    if not getattr(socket.getaddrinfo, "digits_loopback", False):
        socket.getaddrinfo = resolver(socket.getaddrinfo)
    endpoint = api_endpoint(port)
    if "kagglesdk.kaggle_env" in sys.modules:
        _point(sys.modules["kagglesdk.kaggle_env"], endpoint)
    else:
        sys.meta_path.insert(0, _AfterImport("kagglesdk.kaggle_env", lambda module: _point(module, endpoint)))


def _point(kaggle_env: Any, endpoint: str) -> None:
    kaggle_env._env_to_endpoint[kaggle_env.KaggleEnv.PROD] = endpoint


def shorten(seconds: float) -> None:
    """For a whole process: the Kaggle client's timeouts are `seconds`, its backoff a few milliseconds."""
    import sys

    settings = {
        "pipeline.kaggle_client.downloads": {"TIMEOUT": seconds},
        "pipeline.kaggle_client.submissions": {"SUBMIT_TIMEOUT": seconds, "LIST_TIMEOUT": seconds},
        "pipeline.kaggle_client.retry": {"BACKOFF_BASE": 0.01, "BACKOFF_MAX": 0.05},
    }
    for name, values in settings.items():
        sys.meta_path.insert(0, _AfterImport(name, lambda module, values=values: _set(module, values)))


def _set(module: Any, values: dict[str, float]) -> None:
    for key, value in values.items():
        setattr(module, key, value)


class _AfterImport:
    """A meta path finder: after the module `name` is executed, call `then(module)`.

    Lazy, so a subprocess imports kagglesdk (and requests) only when the code under test does.
    """

    def __init__(self, name: str, then: Callable[[Any], None]) -> None:
        self.name = name
        self.then = then

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        execute = loader.exec_module
        then = self.then

        def exec_module(module: Any) -> None:
            execute(module)
            then(module)

        loader.exec_module = exec_module
        return spec
