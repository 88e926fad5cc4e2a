"""The security headers every response carries, whichever layer writes it."""

from typing import Final

API_CSP: Final = b"default-src 'none'; frame-ancestors 'none'"
# The docs page loads its own script, styles and images, all served by this app.
DOCS_CSP: Final = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'"
)
_COMMON: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
API_HEADERS: Final = (*_COMMON, (b"content-security-policy", API_CSP))
DOCS_HEADERS: Final = (*_COMMON, (b"content-security-policy", DOCS_CSP))
NO_STORE: Final = (b"cache-control", b"no-store")
