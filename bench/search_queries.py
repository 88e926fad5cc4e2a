"""Product names as a catalogue has them, the `q` values the search scenario sends, and a check
that the service answers them as a scan of the names would.

Names are "<adjective> <material> <product> <code>" ("Rustic walnut desk lamp 7F3A"), drawn per
row from the md5 of its number, so they do not follow the created_at order the pages walk. That
gives fragments of every frequency: a word is in 1 name in 12-24, two words' junction ("ut ch")
in about 1 in 270, a piece of the code ("7F3") in about 1 in 2,000, the whole code in 1 in
65,000. The planner must pick well across all of them.
"""

import json
import random
from urllib.parse import quote

import psycopg
from procs import http_get

ADJECTIVES = [
    "Classic",
    "Compact",
    "Deluxe",
    "Rustic",
    "Modern",
    "Vintage",
    "Portable",
    "Ergonomic",
    "Foldable",
    "Premium",
    "Smart",
    "Wireless",
    "Handmade",
    "Organic",
    "Heavy-duty",
    "Slim",
]
MATERIALS = [
    "oak",
    "walnut",
    "steel",
    "brass",
    "cotton",
    "linen",
    "leather",
    "glass",
    "bamboo",
    "ceramic",
    "wool",
    "copper",
]
PRODUCTS = [
    "desk lamp",
    "chair",
    "table",
    "bookshelf",
    "mug",
    "kettle",
    "backpack",
    "notebook",
    "blanket",
    "pillow",
    "speaker",
    "headphones",
    "keyboard",
    "mouse",
    "monitor stand",
    "vase",
    "planter",
    "clock",
    "mirror",
    "rug",
    "jacket",
    "scarf",
    "wallet",
    "bottle",
]


def _pick(words: list[str], byte: int) -> str:
    array = "ARRAY[" + ",".join(f"'{w}'" for w in words) + "]"
    return f"({array})[1 + get_byte(h, {byte}) %% {len(words)}]"  # %% : sent with parameters


# A SQL expression of h (md5 of the row number, as bytea) for the row's name, written for psycopg
# with parameters (% doubled).
NAME_SQL = (
    f"{_pick(ADJECTIVES, 0)} || ' ' || {_pick(MATERIALS, 1)} || ' ' || {_pick(PRODUCTS, 2)}"
    " || ' ' || upper(substr(encode(h, 'hex'), 7, 4))"
)


def sample_queries(url: str, rows: int, count: int, seed: int = 18) -> list[str]:
    """`count` fragments of 3 to 5 characters, each cut at random from a random product's name."""
    chance = random.Random(seed)
    skus = [f"SEED-{chance.randint(1, rows):07d}" for _ in range(count)]
    with psycopg.connect(url) as db:
        found = dict(db.execute("SELECT sku, name FROM products WHERE sku = ANY(%s)", (skus,)))
    queries = []
    for sku in skus:
        name = found[sku]
        length = chance.randint(3, 5)
        start = chance.randint(0, len(name) - length)
        queries.append(name[start : start + length])
    return queries


def encoded(queries: list[str]) -> str:
    """One URL-encoded `q` value a line, for the wrk script."""
    return "".join(quote(q, safe="") + "\n" for q in queries)


def check_answers(base: str, url: str, queries: list[str]) -> None:
    """The service's first page for each query names the products a scan finds, in order.

    position() on lower(name) uses no index: this is the meaning the index must keep.
    """
    with psycopg.connect(url) as db:
        for q in queries:
            expected = [
                str(row[0])
                for row in db.execute(
                    "SELECT id FROM products WHERE position(%s in lower(name)) > 0 "
                    "ORDER BY created_at, id LIMIT 20",
                    (q.lower(),),
                )
            ]
            status, body = http_get(f"{base}/products?limit=20&q={quote(q, safe='')}")
            got = [item["id"] for item in json.loads(body)["items"]] if status == 200 else None
            if got != expected:
                raise RuntimeError(f"q={q!r}: the service answered {status} {got}, not {expected}")
