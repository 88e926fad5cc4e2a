"""`cme token`: mint a development JWT signed with JWT_SECRET (HS256)."""

import argparse
import sys
import time
import uuid
from typing import Any, Final

from cme_adapters.auth.jwt_config import JwtSettings
from cme_domain.principal import READ_SCOPE, WRITE_SCOPE
from cme_entrypoints.settings import Settings

MAX_TTL_SECONDS: Final = 7 * 24 * 3600


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    token = commands.add_parser(
        "token",
        help="print a development JWT signed with JWT_SECRET",
        description=(
            "Print an HS256 JWT for development and tests, signed with JWT_SECRET and carrying "
            "JWT_ISSUER and JWT_AUDIENCE when they are set. Production tokens come from an "
            "identity provider."
        ),
    )
    token.add_argument("--subject", required=True, help="the token's sub: who is calling")
    token.add_argument(
        "--scope",
        default=f"{READ_SCOPE} {WRITE_SCOPE}",
        help=f"space-separated scopes (default: '{READ_SCOPE} {WRITE_SCOPE}')",
    )
    token.add_argument(
        "--ttl", type=int, default=3600, help="seconds until it expires (default 3600)"
    )
    token.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.jwt is None or not settings.jwt.secret:
        print("cme: cme token needs JWT_SECRET (HS256)", file=sys.stderr)
        return 2
    if not 0 < args.ttl <= MAX_TTL_SECONDS:
        print(f"cme: --ttl must be between 1 and {MAX_TTL_SECONDS} seconds", file=sys.stderr)
        return 2
    if not 0 < len(args.subject) <= 200 or not args.subject.isprintable():
        print("cme: --subject must be 1-200 printable characters", file=sys.stderr)
        return 2
    print(mint(settings.jwt, args.subject, args.scope, args.ttl, int(time.time())))
    return 0


def mint(settings: JwtSettings, subject: str, scope: str, ttl: int, now: int) -> str:
    claims: dict[str, Any] = {
        "sub": subject,
        "scope": " ".join(scope.split()),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    if settings.issuer:
        claims["iss"] = settings.issuer
    if settings.audience:
        claims["aud"] = settings.audience[0]
    # Imported here: every uvicorn worker imports this CLI module, and PyJWT costs 9 MiB.
    import jwt

    return jwt.encode(claims, settings.secret, algorithm="HS256")
