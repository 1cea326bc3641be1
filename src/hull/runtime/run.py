"""``run``: create and start in one step; in the foreground, also wait and delete.

As runc does, the foreground runtime makes itself a child subreaper so the
container's init (whose parent, the intermediate process, exits) is re-parented
to it, forwards the signals it receives to init, and exits with init's status
(128+N when init was killed by signal N).
"""

from __future__ import annotations

import os

from hull.runtime import container, create, forwarding
from hull.runtime import linux as L
from hull.runtime.store import Store


def run(store: Store, container_id: str, opts: create.CreateOptions, detach: bool) -> int:
    if detach:
        create.create(store, container_id, opts)
        _start_or_delete(store, container_id)
        return 0
    relay = None
    if not opts.console_socket and _wants_terminal(opts.bundle):
        # As runc: a foreground run with a terminal and no --console-socket
        # gets the pty master back and relays it to the runtime's own terminal.
        from hull.runtime import exec_tty

        relay = exec_tty.Relay()
        opts.console_fd = relay.child_end.fileno()
    L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    pid = create.create(store, container_id, opts)
    if relay is not None:
        relay.receive()
    with forwarding.forwarding_to(pid):
        _start_or_delete(store, container_id)
        status = relay.run(pid) if relay is not None else _wait_for(pid)
    container.delete(store, container_id, force=True)
    return status


def _wants_terminal(bundle: str) -> bool:
    """Whether the bundle's config asks for a terminal; anything unreadable is left for create to report."""
    from hull.oci import jsonfast

    try:
        with open(os.path.join(bundle or ".", "config.json"), "rb") as f:
            process = jsonfast.loads(f.read()).get("process") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return process.get("terminal") is True


def _start_or_delete(store: Store, container_id: str) -> None:
    try:
        container.start(store, container_id)
    except BaseException:
        container.delete(store, container_id, force=True)
        raise


def _wait_for(pid: int) -> int:
    """Reap children until ``pid`` exits; its exit code, or 128+signal."""
    while True:
        try:
            waited, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if waited == pid:
            return forwarding.exit_code(status)
