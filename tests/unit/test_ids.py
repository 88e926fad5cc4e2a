"""The uuid7 generator: unique, time-ordered, and never repeating across a fork."""

import os

from cme_adapters.system import Uuid7Generator


def test_ids_are_version_7_unique_and_ordered_by_millisecond() -> None:
    ids = Uuid7Generator()
    made = [ids.new_id() for _ in range(5000)]  # past one 4 KiB read of random bytes
    assert len(set(made)) == 5000
    assert {u.version for u in made} == {7}
    assert {u.variant for u in made} == {"specified in RFC 4122"}
    millis = [u.int >> 80 for u in made]
    assert millis == sorted(millis)


def test_a_forked_process_does_not_repeat_its_parents_ids() -> None:
    ids = Uuid7Generator()
    ids.new_id()  # the parent has unread random bytes now
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report its next id's random part, and leave at once
        os.write(write, (ids.new_id().int & (2**62 - 1)).to_bytes(8))
        os._exit(0)
    os.waitpid(child, 0)
    theirs = int.from_bytes(os.read(read, 8))
    assert theirs != ids.new_id().int & (2**62 - 1)
