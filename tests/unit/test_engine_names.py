"""Container IDs and names as docker gives them (moby daemon/names.go, daemon/names)."""

from __future__ import annotations

import pytest

from hull.engine.names import ADJECTIVES, SURNAMES, generate_name, new_id, validate_name


def test_ids_are_64_lowercase_hex_digits_and_unique() -> None:
    ids = {new_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 64 and set(i) <= set("0123456789abcdef") for i in ids)


def test_word_lists_are_hulls_own_and_make_valid_names() -> None:
    assert len(set(ADJECTIVES)) == len(ADJECTIVES) >= 60
    assert len(set(SURNAMES)) == len(SURNAMES) >= 100
    for word in (*ADJECTIVES, *SURNAMES):
        assert word.isascii() and word.isalpha() and word.islower()


def test_a_free_name_is_adjective_underscore_surname() -> None:
    names = {generate_name(lambda n: False) for _ in range(100)}
    assert len(names) > 50  # random
    for name in names:
        adjective, surname = name.split("_")
        assert adjective in ADJECTIVES and surname in SURNAMES
        assert validate_name(name) == name


def test_taken_names_are_retried_with_a_digit_suffix_then_the_short_id() -> None:
    asked: list[str] = []

    def taken(name: str) -> bool:
        asked.append(name)
        return len(asked) <= 2

    name = generate_name(taken)
    assert len(asked) == 3
    assert "_" in asked[0] and not asked[0][-1].isdigit()
    assert asked[1][-1].isdigit() and name == asked[2] and name[-1].isdigit()
    cid = new_id()
    assert generate_name(lambda n: True, cid) == cid[:12]  # six tries, as docker
    with pytest.raises(RuntimeError):
        generate_name(lambda n: True)


@pytest.mark.parametrize("name", ["web", "a1", "my.app-2_x", "/leading-slash", "9lives", "A_B"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name.lstrip("/")


@pytest.mark.parametrize("name", ["", "a", "/a", "_web", "-web", ".web", "we b", "web/1", "café", "web\n", "//web"])
def test_invalid_names_get_dockers_message(name: str) -> None:
    with pytest.raises(ValueError) as err:
        validate_name(name)
    assert str(err.value) == f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
