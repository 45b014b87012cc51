"""Forward-auth decides on the bytes the app will get, or refuses.

The full proxy forwards its canonical target (I2), so what it matched is what the app
receives. A front proxy forwards the target as the client sent it: nginx
``$request_uri``, Caddy's raw URI. Where the canonical form differs from those bytes
(an escaped unreserved character such as ``%7E`` or ``%41``, a lower-case escape), the
app would receive another spelling than the one judged, so the endpoint refuses it as
ambiguous, as the full proxy refuses targets it cannot forward as matched.
"""

from __future__ import annotations

from gateway.model import Reason, Rejection, Target


def forwarded_as_judged(raw_target: str, target: Target) -> Rejection | None:
    """``None`` when the front proxy will forward exactly the canonical ``target``."""
    raw_path = raw_target.partition("?")[0]
    if raw_path == target.path:
        return None
    detail = (
        "a front proxy forwards the target as sent, and it is not in canonical form "
        f"(the gateway reads it as {target.path!r}); send it in that form"
    )
    return Rejection(Reason.TARGET_AMBIGUOUS, detail)
