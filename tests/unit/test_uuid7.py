"""The UUID version 7 generator: layout, uniqueness and time order of its ids."""

import os
import time
import uuid
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cme_adapters import system
from cme_adapters.system import Uuid7Generator

CALLS = 10_000


def millis_of(value: uuid.UUID) -> int:
    return value.int >> 80


@pytest.fixture(scope="module")
def ids() -> list[uuid.UUID]:
    generator = Uuid7Generator()
    return [generator.new_id() for _ in range(CALLS)]


def test_every_id_is_version_7_with_the_rfc_9562_variant(ids: list[uuid.UUID]) -> None:
    assert {value.version for value in ids} == {7}
    assert {value.variant for value in ids} == {uuid.RFC_4122}
    assert {(value.int >> 62) & 0b11 for value in ids} == {0b10}


def test_ids_are_unique_over_ten_thousand_calls(ids: list[uuid.UUID]) -> None:
    assert len(set(ids)) == CALLS


def test_the_millisecond_prefix_never_decreases_over_consecutive_calls(
    ids: list[uuid.UUID],
) -> None:
    prefixes = [millis_of(value) for value in ids]
    assert prefixes == sorted(prefixes)


def test_the_prefix_is_the_unix_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = Uuid7Generator().new_id()
    after = time.time_ns() // 1_000_000
    assert before <= millis_of(value) <= after


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**48 - 1), st.binary(min_size=10, max_size=10))
def test_every_bit_but_version_and_variant_comes_from_the_clock_or_the_random_source(
    millis: int, noise: bytes
) -> None:
    fake_time = SimpleNamespace(time_ns=lambda: millis * 1_000_000 + 999_999)
    fake_os = SimpleNamespace(urandom=lambda n: noise[:n], getpid=lambda: 1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(system, "time", fake_time)
        patch.setattr(system, "os", fake_os)
        value = Uuid7Generator().new_id().int
    random = int.from_bytes(noise)
    assert value >> 80 == millis
    assert (value >> 76) & 0xF == 7
    assert (value >> 64) & 0xFFF == (random >> 64) & 0xFFF
    assert (value >> 62) & 0b11 == 0b10
    assert value & (2**62 - 1) == random & (2**62 - 1)


def test_a_forked_process_does_not_repeat_its_parents_ids() -> None:
    # Random bytes are read ahead in blocks: a child must not reuse its parent's unread ones.
    generator = Uuid7Generator()
    generator.new_id()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports the random part of its next id and leaves at once
        os.write(write, (generator.new_id().int & (2**62 - 1)).to_bytes(8))
        os._exit(0)
    os.waitpid(child, 0)
    theirs = int.from_bytes(os.read(read, 8))
    assert theirs != generator.new_id().int & (2**62 - 1)
