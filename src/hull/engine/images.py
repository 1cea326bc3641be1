"""The image a container is made from: found in the store, built in, or pulled (``--pull``)."""

from __future__ import annotations

import sys

from hull.engine.errors import ImageUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hull.image.store import LayoutStore
    from hull.oci.image import Descriptor, Platform


def _lookup(store: LayoutStore, ref: str) -> Descriptor | None:
    from hull.image import names
    from hull.image.errors import NotFound

    try:
        return names.lookup(store, ref)[0]
    except NotFound:
        return None


def find_or_pull(store: LayoutStore, ref: str, policy: str, platform: Platform | None, quiet: bool) -> Descriptor:
    """The index.json descriptor of ``ref``, as ``docker run --pull POLICY`` finds it.

    ``localhost/busybox`` is built from the host's busybox-static on first use
    (hull.image.builtin), so the engine runs something with no network at all.
    """
    from hull.image import builtin

    if policy not in ("missing", "always", "never"):
        raise ImageUnavailable(f'--pull {policy}: must be "missing", "always" or "never"')
    if builtin.ensure_builtin(store, ref):
        found = _lookup(store, ref)
        if found is not None:
            return found
    found = None if policy == "always" and not builtin.is_builtin(ref) else _lookup(store, ref)
    if found is not None:
        return found
    if policy == "never":
        raise ImageUnavailable(f"{ref}: image not known (and --pull never)")
    from hull.image.errors import ImageError

    try:
        pull(store, ref, platform, quiet)
    except ImageError as err:  # an EngineError, so that run/create exit 125 as docker's
        raise ImageUnavailable(str(err)) from None
    found = _lookup(store, ref)
    if found is None:
        raise ImageUnavailable(f"{ref}: pulled, but not found in the store")
    return found


def pull(store: LayoutStore, text: str, platform: Platform | None, quiet: bool) -> Descriptor:
    """Pull ``text`` into the store as ``hull pull`` does, progress on stderr unless ``quiet``."""
    from hull.distribution import pull as _pull
    from hull.distribution import sources
    from hull.distribution.auth import Authenticator
    from hull.distribution.progress import reporter_for

    def say(line: str) -> None:
        if not quiet:
            sys.stderr.write(f"{line}\n")

    say(f"Unable to find image '{text}' locally" if platform is None else f"Pulling {text}")
    ref, client, where, resolved = sources.resolve_pull(
        text, authenticator=Authenticator(), attempt=lambda c, r: _pull.resolve(c, r, platform), log=say
    )
    progress = reporter_for(quiet)
    try:
        result = _pull.pull(store, where, registry=client, platform=platform, progress=progress, resolved=resolved,
                            name=_pull.local_name(ref, resolved[0]))  # fmt: skip
    finally:
        progress.close()
    return result.descriptor
