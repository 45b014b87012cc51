"""Identity: bearer first, then the session cookie; "invalid" stops, "absent" falls through.

The credential stores are small in-memory ``CredentialLookup`` doubles (the stage's own
interface) that record every token they are asked about.
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.errors import StoreUnavailable
from gateway.identity import COOKIE_NAME, Identity
from gateway.model import ANONYMOUS, AuthMethod, Membership, Principal, Reason, Rejection


def person(email: str, method: AuthMethod) -> Principal:
    return Principal(email, email, (Membership("acme", "standard"),), method, 0.0)


ALICE = person("alice@acme.test", AuthMethod.SESSION)
ROBOT = person("apikey:1", AuthMethod.API_KEY)
BOB_JWT = person("bob@acme.test", AuthMethod.BEARER_JWT)


class Known:
    """A credential store that knows a few tokens and records each one it is asked."""

    def __init__(self, tokens: dict[str, Principal]) -> None:
        self.tokens = tokens
        self.asked: list[str] = []

    async def principal(self, token: str) -> Principal | None:
        self.asked.append(token)
        return self.tokens.get(token)


class Stores:
    def __init__(self) -> None:
        self.sessions = Known({"s-good": ALICE})
        self.api_keys = Known({"ghk_good": ROBOT})
        self.bearer = Known({"eyJ.good.jwt": BOB_JWT})

    def identity(self, *, api_keys: bool = True, bearer: bool = True) -> Identity:
        return Identity(
            sessions=self.sessions,
            api_keys=self.api_keys if api_keys else None,
            bearer=self.bearer if bearer else None,
        )

    @property
    def asked(self) -> int:
        return len(self.sessions.asked) + len(self.api_keys.asked) + len(self.bearer.asked)


async def resolve(identity: Identity, **headers: str) -> object:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return await identity.resolve(make_mocked_request("GET", "/api/x", headers=named))


def cookie(token: str, name: str = COOKIE_NAME) -> str:
    return f"theme=dark; {name}={token}; lang=en"


async def test_no_credential_at_all_is_anonymous_and_asks_no_store() -> None:
    stores = Stores()
    assert await resolve(stores.identity()) is ANONYMOUS
    assert await resolve(stores.identity(), Cookie="theme=dark") is ANONYMOUS
    assert stores.asked == 0


async def test_a_valid_session_cookie_is_its_principal() -> None:
    stores = Stores()
    assert await resolve(stores.identity(), Cookie=cookie("s-good")) == ALICE
    assert stores.sessions.asked == ["s-good"]


@pytest.mark.parametrize("token", ["s-expired", "", "s-good-but-altered"])
async def test_an_unknown_session_cookie_is_refused_not_anonymous(token: str) -> None:
    answer = await resolve(Stores().identity(), Cookie=cookie(token))
    assert isinstance(answer, Rejection) and answer.reason is Reason.SESSION_INVALID


async def test_a_cookie_of_another_name_is_not_a_session() -> None:
    stores = Stores()
    assert await resolve(stores.identity(), Cookie=cookie("s-good", "gatehold")) is ANONYMOUS
    assert stores.asked == 0


async def test_a_custom_cookie_name_is_the_only_one_read() -> None:
    stores = Stores()
    identity = Identity(sessions=stores.sessions, cookie_name="__Host-other")
    assert await resolve(identity, Cookie=cookie("s-good", "__Host-other")) == ALICE
    assert await resolve(identity, Cookie=cookie("s-good")) is ANONYMOUS


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_a_bearer_token_goes_to_the_bearer_store(scheme: str) -> None:
    stores = Stores()
    assert await resolve(stores.identity(), Authorization=f"{scheme} eyJ.good.jwt") == BOB_JWT
    assert stores.bearer.asked == ["eyJ.good.jwt"] and stores.api_keys.asked == []


async def test_an_api_key_goes_to_the_api_key_store() -> None:
    stores = Stores()
    assert await resolve(stores.identity(), Authorization="Bearer ghk_good") == ROBOT
    assert stores.api_keys.asked == ["ghk_good"] and stores.bearer.asked == []


async def test_a_bearer_credential_wins_over_a_session_cookie() -> None:
    stores = Stores()
    answer = await resolve(
        stores.identity(), Authorization="Bearer ghk_good", Cookie=cookie("s-good")
    )
    assert answer == ROBOT
    assert stores.sessions.asked == [], "the cookie was not consulted"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer ghk_unknown",
        "Bearer eyJ.forged.jwt",
        "Bearer ",
        "Bearer",
        "Bearer    ",
        "bearer ghk_",
    ],
)
async def test_an_invalid_bearer_credential_is_refused_even_with_a_good_cookie(
    authorization: str,
) -> None:
    stores = Stores()
    answer = await resolve(stores.identity(), Authorization=authorization, Cookie=cookie("s-good"))
    assert isinstance(answer, Rejection) and answer.reason is Reason.CREDENTIAL_INVALID
    assert stores.sessions.asked == [], "an invalid credential must not fall back to the cookie"


@pytest.mark.parametrize("missing", ["api_keys", "bearer"])
async def test_a_bearer_kind_the_gateway_does_not_accept_is_refused(missing: str) -> None:
    identity = Stores().identity(**{missing: False})
    token = "ghk_good" if missing == "api_keys" else "eyJ.good.jwt"
    answer = await resolve(identity, Authorization=f"Bearer {token}")
    assert isinstance(answer, Rejection) and answer.reason is Reason.CREDENTIAL_INVALID


@pytest.mark.parametrize(
    "authorization",
    ["Basic YWxpY2U6c2VjcmV0", "Digest username=alice", "Token ghk_good", "ghk_good"],
)
async def test_other_authorization_schemes_are_the_apps_and_pass_through(
    authorization: str,
) -> None:
    stores = Stores()
    identity = stores.identity()
    assert await resolve(identity, Authorization=authorization) is ANONYMOUS
    assert await resolve(identity, Authorization=authorization, Cookie=cookie("s-good")) == ALICE
    assert stores.bearer.asked == [] and stores.api_keys.asked == []


class Unreachable:
    """A credential store whose database cannot be reached."""

    async def principal(self, token: str) -> Principal | None:
        raise StoreUnavailable("store read failed: connection refused")


@pytest.mark.parametrize(
    "headers",
    [
        {"Cookie": cookie("s-good")},
        {"Authorization": "Bearer ghk_good"},
        {"Authorization": "Bearer eyJ.good.jwt"},
    ],
    ids=["session", "api key", "bearer"],
)
async def test_a_credential_the_store_cannot_look_up_is_refused_as_store_unavailable(
    headers: dict[str, str],
) -> None:
    down = Unreachable()
    identity = Identity(sessions=down, api_keys=down, bearer=down)
    answer = await identity.resolve(make_mocked_request("GET", "/api/x", headers=headers))
    # Unknown, never anonymous: a public route still runs, a protected one answers 503.
    assert isinstance(answer, Rejection) and answer.reason is Reason.STORE_UNAVAILABLE
    assert await resolve(identity) is ANONYMOUS, "no credential needs no store"
