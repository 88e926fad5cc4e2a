"""The code's Alembic revisions, read from the migration scripts without importing Alembic."""

import re
from pathlib import Path
from typing import Final

import attrs

# The newest revision this code needs, written out for the tests, which hold code_revisions()
# and Alembic's own head to it; the code reads the head from the scripts (code_revisions).
SCHEMA_HEAD: Final = "0010"
_VERSIONS: Final = Path(__file__).with_name("migrations") / "versions"
# The two assignments every script in versions/ declares, as `alembic revision` writes them.
_REVISION: Final = re.compile(r'^revision: str = "([^"]+)"$', re.MULTILINE)
_DOWN: Final = re.compile(r'^down_revision: str \| None = (?:"([^"]+)"|None)$', re.MULTILINE)


@attrs.frozen
class CodeRevisions:
    """The newest revision this code needs, and every revision it knows."""

    head: str
    known: frozenset[str]

    def is_behind(self, database: str | None) -> bool:
        """True for a database never migrated or at an older revision of this code.

        A revision this code does not know is newer (a release ahead of this one migrated it
        during a rollout): serving on it is the point of expand-and-contract migrations.
        """
        return database is None or (database in self.known and database != self.head)


def code_revisions(versions: Path = _VERSIONS) -> CodeRevisions:
    """Parsed, not imported: importing Alembic costs a third of a worker's start-up."""
    down_of: dict[str, str | None] = {}
    for script in sorted(versions.glob("*.py")):
        text = script.read_text()
        revision, down = _REVISION.search(text), _DOWN.search(text)
        if revision is None:
            continue
        if down is None:
            raise ValueError(f"{script.name} declares no down_revision")
        down_of[revision.group(1)] = down.group(1)
    heads = set(down_of) - set(down_of.values())
    if len(heads) != 1:
        raise ValueError(f"the migrations have {len(heads)} heads, not one: {sorted(heads)}")
    return CodeRevisions(head=heads.pop(), known=frozenset(down_of))
