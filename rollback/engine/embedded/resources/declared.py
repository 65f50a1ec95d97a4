"""Live values put back into the shape the program declared them in.

Drift verification compares each declared input with the same key of `read`,
after only light normalisation (integral floats as ints, no null keys). AWS
reorders lists and fills nested blocks with defaults the program never set;
reporting those as drift would be false. So a live list holding exactly the
declared items comes back in the declared order, and a live nested block
comes back with only the declared keys. Anything that really differs stays
visible.
"""

from __future__ import annotations

from typing import Any


def in_declared_order(live: list[Any], declared: Any) -> list[Any]:
    """`live` with the declared items first, in the declared order, then the rest in live order."""
    if not isinstance(declared, list):
        return list(live)
    rest = list(live)
    ordered = []
    for item in declared:
        if item in rest:
            rest.remove(item)
            ordered.append(item)
    return ordered + rest


def declared_keys(live: dict[str, Any], declared: Any) -> dict[str, Any]:
    """`live` limited to the keys the program declared (all of `live` when nothing was declared)."""
    if not isinstance(declared, dict):
        return dict(live)
    return {key: live[key] for key in declared if key in live}
