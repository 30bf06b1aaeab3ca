"""The CLI's view of grader: one interface, served in-process (embedded) or over HTTP (`grader serve`).

`open_client(settings)` picks: a configured server (GRADER_SERVER, or `grader login`'s credentials)
gives a RemoteClient; otherwise a LocalClient calls the service layer in this process. Both return
the service's own pydantic models, so the CLI renders one thing whichever way it came.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grader.client.base import Client
    from grader.settings import Settings


def open_client(settings: Settings) -> Client:
    from grader.client.credentials import load_credentials

    server, token = settings.server, settings.token
    if server is None:
        saved = load_credentials()
        if saved is not None:
            server, token = saved.server, token or saved.token
    elif token is None:
        saved = load_credentials()
        if saved is not None and saved.server.rstrip("/") == server.rstrip("/"):
            token = saved.token
    if server:
        from grader.client.remote import RemoteClient

        return RemoteClient(server, token)
    from grader.client.local import LocalClient

    return LocalClient(settings)
